"""Where `train` chooses the n-gram path's share (and the temperature): every rule on the same
trained models, side by side with the linear peers, on every data set here, over seeds.

    python bench/floor.py [--data amazon,sst-phrases,imdb-5k-stars,imdb-5k] [--seeds 3] [--threads 1]
                          [--json runs/floor.json]

For each data set (bench/common.py) and seed, `reviewlstm train` with its defaults and `--mixture-on
cross-fit` (the temperature and the share chosen on dev read out of selection: each half of dev by
the check the other half chose). The same kept recurrent path and the same n-gram path (refitted here
as train fits it) are then mixed at the share each rule chooses, and scored on the untouched slice:

    cross-fit, NLL       the share by the mixture's lowest NLL on the cross-fitted reading
    cross-fit, accuracy  the same reading, the early-stopping rule (accuracy, ties by NLL)
    dev, accuracy        dev as the kept check reads it, the early-stopping rule (`--mixture-on dev`)
    dev, NLL             the same, by the lowest NLL
    half                 a fixed half share, chosen by nothing
    recurrent alone, n-grams alone

(the temperature is the cross-fitted one throughout, so the dev rules differ from `--mixture-on dev`
by its temperature only). Beside them, on the same training reviews minus the same slice: TF-IDF
1-2-grams + LR and NBSVM. The floor's test: the chosen mixture never more than 0.5 points under the
best linear peer on the slice.
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
from common import PEERS, Split, datasets, mean_sd, scores

from reviewlstm import api
from reviewlstm.inference import artifact
from reviewlstm.training import loop
from reviewlstm.nn.ngrams import NgramPath
from reviewlstm.inference.predict import read_distributions
from reviewlstm.training.config import TrainConfig
from reviewlstm.training.examples import load_data, reading_ids

LINEAR = ("TF-IDF 1-2-grams + logistic regression", "NBSVM 1-2-grams (logistic regression)")
RULES = ("cross-fit, NLL", "cross-fit, accuracy", "dev, accuracy", "dev, NLL", "half", "recurrent alone",
         "n-grams alone")


def trained(ds, split, seed: int, threads: int) -> dict:
    with tempfile.TemporaryDirectory() as out:
        cfg = TrainConfig(overwrite=True, out=out, seed=seed, threads=threads, progress=False, mixture_on="cross-fit",
                          **ds.train_args())
        result = api.train(cfg, log=lambda line: None)
        assert result.holdout_metrics["n"] == len(split.held), "the slice must be the same as the peers'"
        loaded = api.load_model(out)
        meta = json.loads((Path(out) / "metadata.json").read_text())
        model, mcfg = loaded.model, loaded.config
        data = load_data(cfg, lambda line: None)
        ids = {part: reading_ids(tokens, loaded.vocab, mcfg.long_text, cfg.max_length)
               for part, tokens in (("train", data.train_tokens), ("dev", data.dev_tokens), ("slice", data.holdout_tokens))}
        path = NgramPath.fit([[i for p in pieces for i in p] for pieces in ids["train"]],
                             [e.rating - mcfg.scale_min for e in data.train], len(mcfg.ratings), mcfg.vocab_size, seed=seed)
        truth = {"dev": np.asarray([e.rating - mcfg.scale_min for e in data.dev]),
                 "slice": np.asarray([e.rating - mcfg.scale_min for e in data.holdout])}
        recurrent = {k: read_distributions(model, ids[k], recurrent_only=True) for k in truth}
        linear = {k: path.probabilities([[i for p in pieces for i in p] for pieces in ids[k]]) for k in truth}
        on_dev = {rule: loop.mixture_share(recurrent["dev"], linear["dev"], truth["dev"], mcfg.ratings, rule)[0]
                  for rule in ("checkpoint", "nll")}
        ngram = meta.get("ngram_path") or {}
        chosen = ngram.get("share", 1.0)
        other = ngram.get("share_by_the_other_rule", chosen)
        shares = {"cross-fit, NLL": chosen, "cross-fit, accuracy": other, "dev, accuracy": on_dev["checkpoint"],
                  "dev, NLL": on_dev["nll"], "half": 0.5, "recurrent alone": 1.0, "n-grams alone": 0.0}
        row = {"seed": seed, "shares": {r: round(1 - w, 2) for r, w in shares.items()},  # the n-gram path's share
               "temperature": mcfg.temperature, "cross_fit": meta.get("cross_fit"),
               "seconds": meta.get("seconds"),
               "dev_kept": {k: result.dev_metrics[k] for k in ("accuracy", "mae")} if result.dev_metrics else None,
               "slice_kept": {k: result.holdout_metrics[k] for k in ("accuracy", "mae", "ece")}}
        for rule, w in shares.items():
            m = loop.mixture_metrics(recurrent["slice"], linear["slice"], w, truth["slice"], mcfg.ratings)
            row[rule] = {k: m[k] for k in ("accuracy", "mae", "nll")}
        artifact.forget(out)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="amazon,sst-phrases,imdb-5k-stars,imdb-5k")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    rows = []
    print("| data | model | seeds | slice acc | slice MAE | slice ECE | dev acc | n-gram share |")
    print("|---|---|---|---|---|---|---|---|")
    for ds in datasets(args.data):
        split = Split.read(ds)
        texts, y = Split.texts(split.kept), Split.ratings(split.kept)
        for name in LINEAR:
            predict = PEERS[name](texts, y, 0)
            h = scores(Split.ratings(split.held), predict(Split.texts(split.held)), ds.ratings)
            d = scores(Split.ratings(split.dev), predict(Split.texts(split.dev)), ds.ratings)
            rows.append({"data": ds.name, "model": name, "slice": h, "dev": d})
            print(f"| {ds.name} | {name} | 1 | {h['accuracy']:.1%} | {h['mae']:.3f} | - | {d['accuracy']:.1%} | - |",
                  flush=True)
        runs = []
        for seed in range(args.seeds):
            runs.append(trained(ds, split, seed, args.threads))
            if args.json:
                Path(args.json).parent.mkdir(parents=True, exist_ok=True)
                Path(args.json).write_text(json.dumps(rows + [{"data": ds.name, "model": "train", "runs": runs}], indent=1))
        rows.append({"data": ds.name, "model": "train --mixture-on cross-fit", "runs": runs})
        for rule in RULES:
            acc, mae = (mean_sd([r[rule][k] for r in runs]) for k in ("accuracy", "mae"))
            shares = ", ".join(f"{r['shares'][rule]:g}" for r in runs)
            print(f"| {ds.name} | train, share by {rule} | {len(runs)} | {acc[0]:.1%} ± {acc[1]:.1%} | "
                  f"{mae[0]:.3f} ± {mae[1]:.3f} | - | - | {shares} |", flush=True)
        ece = mean_sd([r["slice_kept"]["ece"] for r in runs])
        dev = mean_sd([r["dev_kept"]["accuracy"] for r in runs])
        crossed = mean_sd([r["cross_fit"]["dev_out_of_selection"]["accuracy"] for r in runs if r["cross_fit"]])
        print(f"| {ds.name} | train (as saved) | {len(runs)} | - | - | {ece[0]:.1%} ± {ece[1]:.1%} | {dev[0]:.1%} "
              f"(out of selection {crossed[0]:.1%}) | - |", flush=True)
        if args.json:
            Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
