"""Two (or more) model directories' prediction speed, side by side in one run, in alternating rounds
(the machine's speed drifts: a ratio measured in one run is the figure to trust).

    python bench/model_speed.py --models src/reviewlstm/default_model runs/distill-sst/student-seed0

Per model and round: batch prediction of SST-5 dev through `Predictor.predict` (sentences/s, end to
end: tokenizing, reading rule, padding, model, ratings) and the latency of rating one dev sentence at
a time (p50 and p99 over 300 sentences). Reported: the median over rounds, and each model's ratio
to the first model, round by round (median).
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from reviewlstm import api
from reviewlstm.io.data import read_examples
from reviewlstm.nn.fourgate import compiled
from reviewlstm.inference.predict import Predictor

from common import sst_arg


def one_round(predictor: Predictor, texts: list[str], singles: list[str]) -> dict:
    t0 = time.perf_counter()
    predictor.predict(texts)
    batch = len(texts) / (time.perf_counter() - t0)
    lat = []
    for text in singles:
        t0 = time.perf_counter()
        predictor.predict([text])
        lat.append((time.perf_counter() - t0) * 1000)
    lat.sort()
    return {"batch": batch, "p50": lat[len(lat) // 2], "p99": lat[int(len(lat) * 0.99)]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", nargs="+", required=True)
    sst_arg(ap)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    texts = [e.text for e in read_examples(Path(args.sst) / "dev.txt")]
    singles = texts[:300]
    compiled.load()
    predictors = [Predictor(api.load_model(m)) for m in args.models]
    for p in predictors:  # warm-up: first calls allocate
        p.predict(texts[:256])
        p.predict([texts[0]])
    rounds: list[list[dict]] = [[] for _ in predictors]
    for _ in range(args.rounds):
        for i, p in enumerate(predictors):
            rounds[i].append(one_round(p, texts, singles))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, kernel {compiled.status()}; "
          f"{len(texts)} SST-5 dev sentences, {args.rounds} alternating rounds")
    print("| model | batch sentences/s (median) | vs first | single sentence p50 ms | vs first | p99 ms |")
    print("|---|---|---|---|---|---|")
    for i, m in enumerate(args.models):
        med = {k: statistics.median(r[k] for r in rounds[i]) for k in ("batch", "p50", "p99")}
        ratio_b = statistics.median(a["batch"] / b["batch"] for a, b in zip(rounds[i], rounds[0]))
        ratio_l = statistics.median(a["p50"] / b["p50"] for a, b in zip(rounds[i], rounds[0]))
        print(f"| {m} | {med['batch']:,.0f} | {ratio_b:.3f} | {med['p50']:.2f} | {ratio_l:.3f} | {med['p99']:.2f} |")


if __name__ == "__main__":
    main()
