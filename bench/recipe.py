"""Recipe variants over seeds, each reported on dev and on the untouched validation slice.

    python bench/recipe.py --data amazon --variants "pooling=final;pooling=max;pooling=mean" --seeds 0,1,2
    python bench/recipe.py --data sst-phrases --variants "cell=lstm;cell=classic-lstm" --seeds 0,1,2
    python bench/recipe.py --data imdb-5k --variants ";init_from=none" --mix-tfidf   # + a TF-IDF + LR path
    python bench/recipe.py --data imdb-5k-stars --mix-model runs/distill-imdb5k-stars  # one trained model

A variant is `;`-separated sets of TrainConfig settings (`name=value,name=value`); everything else
is the default recipe. A variant wins only if it wins on the slice too (dev chose its checkpoints,
so dev flatters whichever variant had the luckiest checks). Data sets as in bench/common.py.
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from dataclasses import fields
from pathlib import Path

import numpy as np

from reviewlstm import api
from reviewlstm.inference import metrics
from reviewlstm.io.data import read_examples
from reviewlstm.inference.predict import Predictor
from reviewlstm.training.config import TrainConfig
from reviewlstm.training.examples import split_holdout

from common import Split, data_args, datasets, scores


def parse_variant(text: str) -> dict:
    types = {f.name: f.type for f in fields(TrainConfig)}
    out = {}
    for pair in filter(None, text.split(",")):
        key, value = pair.split("=", 1)
        kind = str(types[key]).split(" |")[0]  # "float | None" -> float
        if value.lower() == "none" and "None" in str(types[key]):
            out[key] = None
        elif value == "auto":
            out[key] = value
        else:
            out[key] = (value.lower() in ("1", "true", "yes") if kind == "bool" else int(value) if kind == "int"
                        else float(value) if kind == "float" else value)
    return out


def seed_ensemble(model_dirs, train_path, dev_path, phrases, max_examples=None) -> dict:
    """One model out of several runs: the mean of their distributions, on dev and on the slice (the
    same reviews each run set aside: the slice is a hash of the text, no seed moves it)."""
    loaded = [api.load_model(d) for d in model_dirs]
    cfg = loaded[0].config
    train_ex = list(read_examples(train_path, scale=(cfg.scale_min, cfg.scale_max), require_rating=True,
                                  phrases=phrases))[:max_examples]
    parts = {"dev": list(read_examples(dev_path, scale=(cfg.scale_min, cfg.scale_max), require_rating=True)),
             "slice": split_holdout(train_ex, TrainConfig.holdout)[1]}
    out = {"seed": "+".join(d.rsplit("seed", 1)[1] for d in model_dirs), "best_epoch": "-", "seconds": 0.0}
    for part, examples in parts.items():
        probs = np.mean([[p.probabilities for p in Predictor(m).predict([e.text for e in examples],
                                                                        [e.tokens for e in examples])]
                         for m in loaded], axis=0)  # (models, N, K) -> (N, K)
        ratings = np.asarray(cfg.ratings, dtype=np.float64)
        out[part] = metrics.score([e.rating for e in examples], (probs.argmax(1) + cfg.scale_min).tolist(),
                                  (probs @ ratings).tolist(), cfg.ratings)
    return out


def tfidf_mixture(model_dirs, ds, max_examples=None) -> list[dict]:
    """Each run's distributions mixed with TF-IDF + LR's (fitted once on the same kept training reviews),
    the model's share chosen on dev as distill's ensemble teacher chooses it (loop.mixture_share),
    then scored on the slice at that share: a linear n-gram path beside the recurrent one, measured
    without training one."""
    from reviewlstm.distillation.baseline import TfidfLR
    from reviewlstm.training.loop import mixture_metrics, mixture_share
    split = Split.read(ds, max_examples)
    peer = TfidfLR.fit(Split.texts(split.kept), Split.ratings(split.kept))
    runs = []
    for d in model_dirs:
        m = api.load_model(d)
        ratings = m.config.ratings
        out = {"seed": Path(d).name, "seconds": 0.0}
        probs = {part: np.asarray([p.probabilities for p in Predictor(m).predict([e.text for e in ex], [e.tokens for e in ex])])
                 for part, ex in (("dev", split.dev), ("slice", split.held))}
        truth = {part: np.asarray(Split.ratings(ex)) - ratings[0] for part, ex in (("dev", split.dev), ("slice", split.held))}
        lr = {part: peer.proba(Split.texts(ex), ratings) for part, ex in (("dev", split.dev), ("slice", split.held))}
        weight, out["dev"] = mixture_share(probs["dev"], lr["dev"], truth["dev"], ratings)
        out["slice"] = mixture_metrics(probs["slice"], lr["slice"], weight, truth["slice"], ratings)
        out["best_epoch"] = f"w={weight:g}"  # printed in the table's epochs column
        runs.append(out)
    return runs


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--variants", default="")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--mix-tfidf", action="store_true",
                    help="also score each run mixed with TF-IDF + LR's distributions, the share chosen on dev")
    ap.add_argument("--ensemble", action="store_true",
                    help="also score each variant's seeds as one model (their distributions averaged)")
    ap.add_argument("--mix-model", default=None, metavar="DIR",
                    help="train nothing: score this trained model alone and mixed with TF-IDF + LR (share on dev)")
    data_args(ap, default="amazon")
    args = ap.parse_args()
    (ds,) = datasets(args.data)
    if args.mix_model:
        (mixed,) = tfidf_mixture([args.mix_model], ds)
        held = Split.read(ds).held
        alone = {"dev": api.evaluate(ds.dev, model=args.mix_model),
                 "slice": scores(Split.ratings(held), [p.rating for p in Predictor(api.load_model(args.mix_model)).predict(
                     [e.text for e in held], [e.tokens for e in held])], ds.ratings)}  # read as the mixture reads them
        print("| model | dev acc | dev MAE | slice acc | slice MAE |\n|---|---|---|---|---|")
        for name, r in ((args.mix_model, alone), (f"{args.mix_model} mixed with TF-IDF + LR ({mixed['best_epoch']})", mixed)):
            print(f"| {name} | {r['dev']['accuracy']:.1%} | {r['dev']['mae']:.3f} | {r['slice']['accuracy']:.1%} "
                  f"| {r['slice']['mae']:.3f} |")
        return
    train_path, dev_path, phrases = ds.train, ds.dev, ds.phrases
    rows = []
    print("| data | variant | seeds | dev acc | dev MAE | slice acc | slice MAE | slice macro-F1 | best epochs | s/run |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for variant in args.variants.split(";"):
        settings = parse_variant(variant)
        runs, singles = [], []
        keep = tempfile.TemporaryDirectory()
        for seed in map(int, args.seeds.split(",")):
            out = f"{keep.name}/seed{seed}"
            t0 = time.perf_counter()
            result = api.train(TrainConfig(train=str(train_path), dev=str(dev_path), out=out, phrases=phrases,
                                           seed=seed, threads=args.threads, progress=False, scale_min=ds.scale[0],
                                           scale_max=ds.scale[1], **settings),
                               log=lambda s: None)
            ev = api.evaluate(dev_path, model=out)
            runs.append({"seed": seed, "dev": ev, "slice": result.holdout_metrics, "best_epoch": result.best_epoch,
                         "seconds": time.perf_counter() - t0})
            single = json.loads((Path(out) / "metadata.json").read_text()).get("single_best")
            if single:  # average_best: the same run's single best check, for comparison
                singles.append({"seed": seed, "dev": single["dev_metrics"], "slice": single["holdout_metrics"],
                                "best_epoch": single["best_epoch"], "seconds": 0.0})

        def ms(group, part, key):
            values = [r[part][key] for r in group]
            sd = statistics.stdev(values) if len(values) > 1 else 0.0
            return f"{statistics.mean(values):.3f} ± {sd:.3f}" if key != "accuracy" else \
                f"{statistics.mean(values):.1%} ± {sd:.1%}"
        ensemble = []
        if args.ensemble:
            ensemble = [seed_ensemble([f"{keep.name}/seed{r['seed']}" for r in runs], train_path, dev_path, phrases,
                                      settings.get("max_examples"))]
        mixed = (tfidf_mixture([f"{keep.name}/seed{r['seed']}" for r in runs], ds, settings.get("max_examples"))
                 if args.mix_tfidf else [])
        keep.cleanup()
        for label, group in ((variant or "default", runs), (f"{variant}: the single best check", singles),
                             (f"{variant or 'default'}: the {len(runs)} seeds' distributions averaged", ensemble),
                             (f"{variant or 'default'}: each mixed with TF-IDF + LR (share on dev)", mixed)):
            if not group:
                continue
            print(f"| {args.data} | {label} | {len(group)} | {ms(group, 'dev', 'accuracy')} | {ms(group, 'dev', 'mae')} "
                  f"| {ms(group, 'slice', 'accuracy')} | {ms(group, 'slice', 'mae')} | {ms(group, 'slice', 'macro_f1')} "
                  f"| {', '.join(str(r['best_epoch']) for r in group)} | {statistics.mean(r['seconds'] for r in group):.0f} |",
                  flush=True)
        rows.append({"variant": variant, "settings": settings, "ensemble": ensemble,
                     "mixed": [{k: (v if k not in ("dev", "slice") else {m: v[m] for m in ("accuracy", "mae", "macro_f1", "qwk")})
                                for k, v in r.items()} for r in mixed],
                     "runs": [{k: (v if k not in ("dev", "slice") else {m: v[m] for m in ("accuracy", "mae", "macro_f1", "qwk")})
                               for k, v in r.items()} for r in runs]})
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
