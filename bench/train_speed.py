"""Training time per SST-5 epoch with the default recipe: sentence- and phrase-level, compiled kernel vs
the Python loop, side by side in one run.

    python bench/train_speed.py [--sst ../shared/data/sst5]

Each row is one epoch of `reviewlstm train` (default recipe, seed 0, no dev evaluation) in a fresh
child process, so REVIEWLSTM_KERNEL=off really runs without the kernel. Wall time includes loading
the data and GloVe (printed separately as "setup", the run minus the epoch).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

from common import sst_arg

CHILD = """
import json, sys, time
t0 = time.perf_counter()
from reviewlstm import api
from reviewlstm.training.config import TrainConfig

cfg = TrainConfig(overwrite=True, train=sys.argv[1], out=sys.argv[2], phrases=sys.argv[3] == "phrases", epochs=1, seed=0,
                  progress=False)
r = api.train(cfg, log=lambda line: None)
print(json.dumps({"train_seconds": r.seconds, "wall": time.perf_counter() - t0}))
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    sst_arg(ap)
    args = ap.parse_args()
    train = os.path.join(args.sst, "train.txt")
    print("| level | examples | kernel | train() total (data, GloVe, one epoch) | process wall |")
    print("|---|---|---|---|---|")
    for level, n in (("sentences", "8,544"), ("phrases", "159,274")):
        times = {}
        for kernel in ("on", "off"):
            with tempfile.TemporaryDirectory() as out:
                env = {**os.environ, "REVIEWLSTM_KERNEL": kernel}
                proc = subprocess.run([sys.executable, "-c", CHILD, train, out, level], env=env,
                                      capture_output=True, text=True)
                if proc.returncode != 0:
                    sys.exit(proc.stderr)
                r = json.loads(proc.stdout.strip().splitlines()[-1])
            times[kernel] = r["train_seconds"]
            print(f"| {level} | {n} | {kernel} | {r['train_seconds']:.1f} s | {r['wall']:.1f} s |", flush=True)
        print(f"| {level} | | speed-up | {times['off'] / times['on']:.2f}x | |", flush=True)


if __name__ == "__main__":
    main()
