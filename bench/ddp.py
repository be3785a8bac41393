"""One epoch of the default recipe: one process x 2 threads against torchrun's 2 processes x 1 thread.

    python bench/ddp.py [--data sst-phrases] [--epochs 1]

The same global batch (64), seed and data; each run is `reviewlstm train` in a child process (the
2-process run under `torchrun --standalone --nproc_per_node=2`), interleaved. Reports wall time
(start-up included) and the dev accuracy / MAE of the kept model.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import data_args, datasets


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=1)
    data_args(ap, default="sst-phrases")
    args = ap.parse_args()
    (ds,) = datasets(args.data)
    train_path, dev_path, phrases = ds.train, ds.dev, ds.phrases
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, launch, threads in (("1 process x 2 threads", [], 2),
                                      ("2 processes x 1 thread (torchrun, gloo)",
                                       ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"], 1)):
            out = Path(tmp) / f"m{len(rows)}"
            cmd = [sys.executable, *launch, "-m", "reviewlstm", "train", "--train", str(train_path), "--dev", str(dev_path),
                   "--out", str(out), "--epochs", str(args.epochs), "--seed", "0", "--threads", str(threads), "--no-progress",
                   *([] if phrases else ["--no-phrases"])]
            t0 = time.perf_counter()
            proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": str(threads)})
            wall = time.perf_counter() - t0
            if proc.returncode != 0:
                sys.exit(proc.stderr[-3000:])
            meta = json.loads((out / "metadata.json").read_text())
            dev = meta["dev_metrics"]
            rows.append((name, wall, dev["accuracy"], dev["mae"], meta["history"][-1]["train_loss"]))
            print(f"{name}: {wall:.0f} s, dev {dev['accuracy']:.1%} / MAE {dev['mae']:.3f}", flush=True)
    base = rows[0][1]
    print("| run | wall | vs one process | dev acc | dev MAE | last training loss |\n|---|---|---|---|---|---|")
    for name, wall, acc, mae, loss in rows:
        print(f"| {name} | {wall:.0f} s | {wall / base:.2f}x | {acc:.1%} | {mae:.3f} | {loss:.4f} |")


if __name__ == "__main__":
    main()
