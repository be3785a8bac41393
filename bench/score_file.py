"""Batch scoring of a large CSV: wall time, rows per second and peak memory, streaming.

    python bench/score_file.py [--rows 1000000] [--model DIR]

Writes a CSV of --rows SST-length reviews (SST-5 train sentences, cycled) to a temporary folder,
scores it with `reviewlstm predict --input ... --output ...` in a child process, and reports the
child's wall time and peak resident memory: of the whole process tree (the CLI and its scoring
workers, summed, sampled every 0.2 s from /proc) and of the largest single process (ru_maxrss).
Run twice with different --rows to see that memory stays flat in the file size.
"""
from __future__ import annotations

import argparse
import csv
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from reviewlstm.io.data import read_examples

from common import sst_arg


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--model", default=None)
    sst_arg(ap)
    args = ap.parse_args()
    sentences = [" ".join(e.tokens) for e in read_examples(Path(args.sst) / "train.txt")]
    with tempfile.TemporaryDirectory() as tmp:
        src, out = Path(tmp) / "reviews.csv", Path(tmp) / "scored.csv"
        with open(src, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["id", "review"])
            for i in range(args.rows):
                w.writerow([i, sentences[i % len(sentences)]])
        cmd = [sys.executable, "-m", "reviewlstm.apps.cli", "predict", "--input", str(src), "--output", str(out),
               "--no-progress"] + (["--model", args.model] if args.model else [])
        wall, tree_peak, stdout = run_child(cmd)
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        with open(out) as f:
            n = sum(1 for _ in f) - 1
        print(stdout.strip())
        print(f"| {args.rows:,} | {src.stat().st_size / 1e6:.0f} MB | {wall:.1f} s | {args.rows / wall:,.0f} rows/s | "
              f"{tree_peak / 2 ** 20:.0f} MB (all processes) | {peak_mb:.0f} MB (largest) | {n:,} rows written |")


def run_child(cmd: list[str]) -> tuple[float, int, str]:
    """(wall seconds, peak resident bytes of the child's process tree, its stdout); exits on failure."""
    t0 = time.perf_counter()
    child = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = 0
    while child.poll() is None:
        peak = max(peak, tree_rss(child.pid))
        time.sleep(0.2)
    out, err = child.communicate()
    if child.returncode != 0:
        sys.exit(err[-3000:])
    return time.perf_counter() - t0, peak, out.strip()


def tree_rss(pid: int) -> int:
    """Resident bytes of a process and all its descendants, from /proc (0 for one that is gone)."""
    total = 0
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                total += sum(tree_rss(int(c)) for c in f.read().split())
    except (FileNotFoundError, ProcessLookupError, ValueError):
        pass
    return total


if __name__ == "__main__":
    main()
