"""The labelling estimate `distill` prints against the labelling it predicts.

    python bench/label_estimate.py --teacher runs/sst-all.work/teacher --transfer runs/sst-all.work/transfer.jsonl.gz
                                   [--n 20000] [--threads 1] [--seed 0]

Draws `n` texts at random from a distill work directory's transfer set (training texts, augmented
texts and unrated ones, in the mix a run labels), then, in a fresh cache: the estimate line
`distill.labelling_estimate` prints (it labels a random chunk of the texts to measure the speed and
keeps it), the labelling of all the other texts by `distill.label` (the real thing, timed), and beside
them the rate a small sample of 128 texts gives when read cold in its own two batches. Prints the
predicted and the actual minutes and their ratio.
"""
from __future__ import annotations

import argparse
import gzip
import json
import re
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from reviewlstm.distillation.distill import label, labelling_estimate
from reviewlstm.distillation.teacher import Teacher, resolve_precision


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--teacher", required=True, help="a fine-tuned teacher directory (WORK/teacher)")
    ap.add_argument("--transfer", required=True, help="WORK/transfer.jsonl.gz of the same run")
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    with gzip.open(args.transfer, "rt") as f:
        token_lists = [json.loads(line)["tokens"] for line in f]
    rng = np.random.default_rng(args.seed)
    texts = [token_lists[i] for i in rng.choice(len(token_lists), min(args.n, len(token_lists)), replace=False)]
    teacher = Teacher.load(args.teacher)
    precision = resolve_precision("auto", next(teacher.parameters()).device)

    small = [teacher.text(t) for t in texts[:128]]
    start = time.perf_counter()
    teacher.logits(small, 64, precision=precision)  # cold, as a first call is
    small_rate = len(small) / (time.perf_counter() - start)

    with tempfile.TemporaryDirectory() as cache:
        said = labelling_estimate(teacher, texts, Path(cache), 64, precision)
        start = time.perf_counter()
        label(teacher, texts, Path(cache), 64, progress=False, log=lambda s: None, precision=precision)
        actual = time.perf_counter() - start
    measured = re.search(r"labelled in \S+ s to measure the speed \((\d+) texts/s", said)
    rate = float(measured.group(1))
    rest = int(re.search(r"the other (\d+)", said).group(1))
    print(said)
    print(f"texts: {len(texts)} from {args.transfer} ({precision}, {args.threads} thread(s))")
    print("| estimate | texts/s | predicted for the rest | actual | predicted / actual |")
    print("|---|---|---|---|---|")
    for name, r in (("the estimate (a random chunk of 2,048, warmed)", rate),
                    ("128 texts read cold in two batches", small_rate)):
        predicted = rest / r
        print(f"| {name} | {r:.0f} | {predicted / 60:.1f} min | {actual / 60:.1f} min | {predicted / actual:.2f} |")


if __name__ == "__main__":
    main()
