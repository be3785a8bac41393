"""SST-5 dev quality of reviewlstm models, mean ± sd over seeds, with training time and throughput.

    python bench/quality.py --configs default --seeds 0,1,2
    python bench/quality.py --configs all --seeds 0,1,2      # the whole grid: hours on 2 cores

Each config trains on SST-5 train and picks its best epoch on dev (dev is the only split we
report; the test split is kept apart). Configs are named; see CONFIGS.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from reviewlstm import api
from reviewlstm.io.data import read_examples
from reviewlstm.training.config import TrainConfig

from common import sst_arg

BASE: dict = {}  # TrainConfig's defaults are the bundled model's recipe
CONFIGS = {
    # the bundled model's recipe
    "default": dict(cell="lstm", bidirectional=True, phrases=True, embeddings="glove"),
    "default-eval2": dict(cell="lstm", bidirectional=True, phrases=True, embeddings="glove", evals_per_epoch=2),
    "lstm-uni": dict(cell="lstm", bidirectional=False, phrases=True, embeddings="glove"),
    "lstm-sentences": dict(cell="lstm", bidirectional=True, phrases=False, embeddings="glove", epochs=15),
    "lstm-random": dict(cell="lstm", bidirectional=True, phrases=True, embeddings="random", extra_glove_words=0),
    "classic-bi": dict(cell="classic-lstm", bidirectional=True, phrases=True, embeddings="glove"),
    "classic-uni": dict(cell="classic-lstm", bidirectional=False, phrases=True, embeddings="glove"),
    "rnn-bi": dict(cell="rnn", bidirectional=True, phrases=True, embeddings="glove"),
    "rnn-uni": dict(cell="rnn", bidirectional=False, phrases=True, embeddings="glove"),
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--configs", default="default", help="comma-separated names, or all")
    ap.add_argument("--seeds", default="0,1,2")
    sst_arg(ap)
    ap.add_argument("--out", default="runs/quality")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    names = list(CONFIGS) if args.configs == "all" else args.configs.split(",")
    seeds = [int(s) for s in args.seeds.split(",")]
    sst = Path(args.sst)
    dev = list(read_examples(sst / "dev.txt"))
    results = {}
    for name in names:
        rows = []
        for seed in seeds:
            out = Path(args.out) / f"{name}-s{seed}"
            cfg = TrainConfig(overwrite=True, train=str(sst / "train.txt"), dev=str(sst / "dev.txt"), out=str(out), seed=seed,
                              progress=False, threads=args.threads, **{**BASE, **CONFIGS[name]})
            r = api.train(cfg, log=lambda line: None)
            loaded = api.load_model(out)
            t0 = time.perf_counter()
            api.predict([e.text for e in dev], model=loaded)
            rate = len(dev) / (time.perf_counter() - t0)
            rows.append({"seed": seed, "accuracy": r.dev_metrics["accuracy"], "mae": r.dev_metrics["mae"],
                         "best_epoch": r.best_epoch, "train_seconds": r.seconds, "sentences_per_second": rate})
            print(f"{name} seed {seed}: dev accuracy {rows[-1]['accuracy']:.1%}, MAE {rows[-1]['mae']:.3f}, "
                  f"best epoch {r.best_epoch}, {r.seconds:.0f}s, {rate:.0f} sentences/s", flush=True)
        acc = [r["accuracy"] for r in rows]
        mae = [r["mae"] for r in rows]
        sd = lambda xs: statistics.stdev(xs) if len(xs) > 1 else 0.0  # noqa: E731
        results[name] = {"runs": rows, "accuracy_mean": statistics.mean(acc), "accuracy_sd": sd(acc),
                         "mae_mean": statistics.mean(mae), "mae_sd": sd(mae)}
        print(f"| {name} | {statistics.mean(acc):.1%} ± {sd(acc):.1%} | {statistics.mean(mae):.3f} ± {sd(mae):.3f} | "
              f"{statistics.mean(r['train_seconds'] for r in rows):.0f} s | "
              f"{statistics.mean(r['sentences_per_second'] for r in rows):,.0f}/s |", flush=True)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    tag = f"{args.configs.replace(',', '+')}-seeds{args.seeds.replace(',', '+')}"
    (Path(args.out) / f"quality-{tag}.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
