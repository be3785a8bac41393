"""What `train` starts from, side by side: its default (`--init-from auto`: the shipped start model for
reviews read whole) against a language model `reviewlstm pretrain` wrote, or any other model directory.

    python bench/start_models.py --start runs/lm [--start none] [--data amazon,imdb-5k-stars] [--seeds 3]
                                 [--threads 1] [--json runs/start-models.json] [--without-default]

For each data set (bench/common.py), seed and start, `reviewlstm train` with its defaults otherwise;
reported on the untouched slice and on dev, mean ± sd over seeds, with the seconds each run took.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from common import datasets, mean_sd

from reviewlstm import api
from reviewlstm.inference import artifact
from reviewlstm.training.config import TrainConfig


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--start", action="append", default=[], help="a model directory, or none (repeatable)")
    ap.add_argument("--data", default="amazon,imdb-5k-stars")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", default=None)
    ap.add_argument("--without-default", action="store_true", help="the given starts alone (the default measured elsewhere)")
    args = ap.parse_args()
    rows = []
    print("| data | start | seeds | slice acc | slice MAE | dev acc | dev MAE | seconds a run |")
    print("|---|---|---|---|---|---|---|---|")
    for ds in datasets(args.data):
        for start in ([] if args.without_default else ["auto"]) + args.start:
            runs = []
            for seed in range(args.seeds):
                with tempfile.TemporaryDirectory() as out:
                    t0 = time.perf_counter()
                    result = api.train(TrainConfig(overwrite=True, out=out, seed=seed, threads=args.threads,
                                                   progress=False, init_from=None if start == "none" else start,
                                                   **ds.train_args()), log=lambda line: None)
                    ev = api.evaluate(ds.dev, model=api.load_model(out))
                    runs.append({"slice": {k: result.holdout_metrics[k] for k in ("accuracy", "mae")},
                                 "dev": {k: ev[k] for k in ("accuracy", "mae")},
                                 "seconds": round(time.perf_counter() - t0, 1)})
                    artifact.forget(out)
            rows.append({"data": ds.name, "start": start, "runs": runs})

            def ms(part, key, pct):
                m, sd = mean_sd([r[part][key] for r in runs])
                return f"{m:.1%} ± {sd:.1%}" if pct else f"{m:.3f} ± {sd:.3f}"
            print(f"| {ds.name} | {start} | {len(runs)} | {ms('slice', 'accuracy', True)} | {ms('slice', 'mae', False)} "
                  f"| {ms('dev', 'accuracy', True)} | {ms('dev', 'mae', False)} | "
                  f"{sum(r['seconds'] for r in runs) / len(runs):.0f} |", flush=True)
            if args.json:
                Path(args.json).parent.mkdir(parents=True, exist_ok=True)
                Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
