"""Ray Data scoring against the native scorer, on the same file and the same cores.

    python bench/ray_score.py [--rows 200000] [--model DIR]

Writes a CSV of --rows SST-length reviews, then scores it twice, interleaved by run: `reviewlstm
predict --input` (the native scorer, its default workers) and `reviewlstm predict --engine ray` (a
local Ray started for the run, on every core of this machine). Each is a child process: wall time
(start-up included: Ray's is part of its cost), rows/s, and the peak resident memory of its whole
process tree (Ray's raylet, GCS and actors included), sampled from /proc.
"""
from __future__ import annotations

import argparse
import csv
import shutil
import sys
import tempfile
from pathlib import Path

from reviewlstm.io.data import read_examples

from score_file import run_child

from common import sst_arg


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--model", default=None)
    ap.add_argument("--preserve-order", action="store_true", help="also Ray with --preserve-order (its cost)")
    sst_arg(ap)
    args = ap.parse_args()
    sentences = [" ".join(e.tokens) for e in read_examples(Path(args.sst) / "train.txt")]
    model = ["--model", args.model] if args.model else []
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "reviews.csv"
        with open(src, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["id", "review"])
            for i in range(args.rows):
                w.writerow([i, sentences[i % len(sentences)]])
        names = ("native", "ray") + (("ray ordered",) if args.preserve_order else ())
        results: dict[str, list] = {name: [] for name in names}
        for r in range(args.repeats):
            for name in names:
                out = Path(tmp) / f"out-{name.replace(' ', '-')}-{r}"
                cmd = [sys.executable, "-m", "reviewlstm.apps.cli", "predict", "--input", str(src), "--no-progress", *model]
                cmd += ["--output", str(out) + ".parquet"] if name == "native" else ["--output", str(out), "--engine", "ray"]
                cmd += ["--preserve-order"] if name == "ray ordered" else []
                wall, peak, said = run_child(cmd)
                results[name].append((wall, peak))
                print(f"{name} run {r}: {wall:.1f} s, {args.rows / wall:,.0f} rows/s, peak {peak / 2**20:.0f} MB: {said}",
                      flush=True)
                shutil.rmtree(out, ignore_errors=True)
                Path(str(out) + ".parquet").unlink(missing_ok=True)
        best = {k: min(w for w, _ in v) for k, v in results.items()}
        peak = {k: max(p for _, p in v) for k, v in results.items()}
        print(f"| {args.rows:,} | native {args.rows / best['native']:,.0f} rows/s, {peak['native'] / 2**20:.0f} MB | "
              f"Ray {args.rows / best['ray']:,.0f} rows/s, {peak['ray'] / 2**20:.0f} MB | "
              f"Ray / native throughput {best['native'] / best['ray']:.2f} |"
              + (f" ordered: {args.rows / best['ray ordered']:,.0f} rows/s, {best['ray'] / best['ray ordered']:.2f} of unordered |"
                 if args.preserve_order else ""))


if __name__ == "__main__":
    main()
