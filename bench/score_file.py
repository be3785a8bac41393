"""Batch scoring of a large CSV: wall time, rows per second and peak memory, streaming.

    python bench/score_file.py [--rows 1000000] [--model DIR]

Writes a CSV of --rows SST-length reviews (SST-5 train sentences, cycled) to a temporary folder,
scores it with `reviewlstm predict --input ... --output ...` in a child process, and reports the
child's wall time and peak resident memory (ru_maxrss). Run twice with different --rows to see
that memory stays flat in the file size.
"""
from __future__ import annotations

import argparse
import csv
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from reviewlstm.data import read_examples


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--model", default=None)
    ap.add_argument("--sst", default="../shared/data/sst5")
    args = ap.parse_args()
    sentences = [" ".join(e.tokens) for e in read_examples(Path(args.sst) / "train.txt")]
    with tempfile.TemporaryDirectory() as tmp:
        src, out = Path(tmp) / "reviews.csv", Path(tmp) / "scored.csv"
        with open(src, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["id", "review"])
            for i in range(args.rows):
                w.writerow([i, sentences[i % len(sentences)]])
        cmd = [sys.executable, "-m", "reviewlstm.cli", "predict", "--input", str(src), "--output", str(out),
               "--no-progress"] + (["--model", args.model] if args.model else [])
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        if proc.returncode != 0:
            sys.exit(proc.stderr)
        with open(out) as f:
            n = sum(1 for _ in f) - 1
        print(proc.stdout.strip())
        print(f"| {args.rows:,} | {src.stat().st_size / 1e6:.0f} MB | {wall:.1f} s | {args.rows / wall:,.0f} rows/s | "
              f"{peak_mb:.0f} MB | {n:,} rows written |")


if __name__ == "__main__":
    main()
