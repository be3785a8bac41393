"""Where `train` chooses the n-gram path's share (and the temperature): the held half of dev against
all of dev, side by side with the linear peers, on every data set here, over seeds.

    python bench/floor.py [--data amazon,sst-phrases,imdb-5k-stars,imdb-5k] [--seeds 3] [--threads 1]
                          [--json runs/floor.json]

For each data set (bench/common.py) and seed, `reviewlstm train` with its defaults twice: once with
`--mixture-on held-half` (half of dev, by text hash, that early stopping never reads; the share by
the mixture's lowest NLL there) and once with `--mixture-on dev` (all of dev, which early stopping
read; the share by the early-stopping rule). Beside them, on the same training reviews minus the same
slice: TF-IDF 1-2-grams + LR and NBSVM. Reported on the untouched slice (accuracy, MAE, ECE) and on
dev: each model, its recurrent path alone, the n-gram share it took. The floor's test: the held-half
model is never more than 0.5 points under the best linear peer on the slice.
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from common import PEERS, Split, datasets, mean_sd, scores

from reviewlstm import api, artifact
from reviewlstm.train import TrainConfig

LINEAR = ("TF-IDF 1-2-grams + logistic regression", "NBSVM 1-2-grams (logistic regression)")


def trained(ds, split, seed: int, rule: str, threads: int) -> dict:
    with tempfile.TemporaryDirectory() as out:
        cfg = TrainConfig(overwrite=True, out=out, seed=seed, threads=threads, progress=False, mixture_on=rule,
                          **ds.train_args())
        result = api.train(cfg, log=lambda line: None)
        assert result.holdout_metrics["n"] == len(split.held), "the slice must be the same as the peers'"
        loaded = api.load_model(out)
        meta = json.loads((Path(out) / "metadata.json").read_text())
        ev = api.evaluate(ds.dev, model=loaded)
        row = {"slice": {k: result.holdout_metrics[k] for k in ("accuracy", "mae", "ece")},
               "dev": {k: ev[k] for k in ("accuracy", "mae")},
               "share": round(1 - loaded.config.ngram_share, 2),  # the n-gram path's
               "temperature": loaded.config.temperature,
               "slice_recurrent": (meta.get("ngram_path") or {}).get("slice_recurrent")}
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
        for rule in ("held-half", "dev"):
            runs = [trained(ds, split, seed, rule, args.threads) for seed in range(args.seeds)]
            rows.append({"data": ds.name, "model": f"train --mixture-on {rule}", "runs": runs})
            def ms(key, part="slice", pct=False):
                m, sd = mean_sd([r[part][key] for r in runs])
                return f"{m:.1%} ± {sd:.1%}" if pct else f"{m:.3f} ± {sd:.3f}"
            shares = ", ".join(f"{r['share']:g}" for r in runs)
            print(f"| {ds.name} | train --mixture-on {rule} | {len(runs)} | {ms('accuracy', pct=True)} | {ms('mae')} | "
                  f"{ms('ece', pct=True)} | {ms('accuracy', 'dev', True)} | {shares} |",
                  flush=True)
            if args.json:
                Path(args.json).parent.mkdir(parents=True, exist_ok=True)
                Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
