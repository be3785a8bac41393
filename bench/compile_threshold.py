"""From how many rows a file is worth the kernel's one-time build: the Python loop's and the compiled
loop's scoring speed, and the build itself, on this machine.

    python bench/compile_threshold.py [--rows 5000]

Scores --rows SST-5 sentences (a CSV, one worker-less process, 2 threads) with REVIEWLSTM_KERNEL=off
and with the kernel cached, then times a build into an empty cache; the break-even is the number of
rows whose scoring the build's seconds would buy back: build / (1 / python_rate - 1 / compiled_rate).
`fourgate.BUILD_ROWS` is set from it.
"""
from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from reviewlstm.io.data import read_examples

from common import sst_arg


def timed(cmd, env) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(proc.stderr)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=5000)
    sst_arg(ap)
    args = ap.parse_args()
    sentences = [" ".join(e.tokens) for e in read_examples(Path(args.sst) / "train.txt")]
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "in.csv"
        with open(src, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["text"])
            w.writerows([sentences[i % len(sentences)]] for i in range(args.rows))
        score = [sys.executable, "-m", "reviewlstm.apps.cli", "predict", "--input", str(src), "--output",
                 str(Path(tmp) / "out.csv"), "--no-progress", "--workers", "0", "--threads", "2"]
        base = dict(os.environ)
        empty = Path(tmp) / "empty.csv"  # process start-up and model load, no rows to speak of
        with open(empty, "w") as f:
            f.write("text\nfine\n")
        startup = timed(score[:5] + [str(empty)] + score[6:], base)
        python_s = timed(score, {**base, "REVIEWLSTM_KERNEL": "off"}) - startup
        subprocess.run([sys.executable, "-m", "reviewlstm.apps.cli", "build-kernel"], capture_output=True)
        compiled_s = timed(score, base) - startup
        build_s = timed([sys.executable, "-m", "reviewlstm.apps.cli", "build-kernel"],
                        {**base, "REVIEWLSTM_CACHE": str(Path(tmp) / "cache")})
    py_rate, c_rate = args.rows / python_s, args.rows / compiled_s
    even = build_s / (1 / py_rate - 1 / c_rate) if c_rate > py_rate else float("inf")
    print(f"{args.rows} rows, 2 threads: Python loop {py_rate:,.0f} rows/s, compiled {c_rate:,.0f} rows/s; "
          f"a build into an empty cache {build_s:.0f} s; break-even {even:,.0f} rows")


if __name__ == "__main__":
    main()
