"""Prediction speed of a model against the machine's own ceiling, in one run.

    python bench/speed.py [--model DIR] [--threads N]

- ceiling: GFLOP/s of a 2048 x 2048 float32 torch.mm (the thread count printed);
- batch prediction on SST-5 dev (sentences/s) and the achieved GFLOP/s of the recurrent layer,
  counting the multiply-adds of the equations (four-gate LSTM: 4H(E+H) + H^2 per token and direction);
- single-review latency in process (p50, p99) on dev sentences and on ~400-word reviews.
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from reviewlstm import api
from reviewlstm.data import read_examples
from reviewlstm.predict import Predictor, predict_proba


def ceiling(n: int = 2048, reps: int = 10) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    t0 = time.perf_counter()
    for _ in range(reps):
        torch.mm(a, b)
    return 2 * n ** 3 * reps / (time.perf_counter() - t0) / 1e9


def macs_per_token(cfg) -> int:
    E, H = cfg.embed_dim, cfg.hidden
    per_dir = {"lstm": 4 * H * (E + H) + H * H, "classic-lstm": 4 * H * (E + H), "rnn": H * (E + H)}[cfg.cell]
    return per_dir * (2 if cfg.bidirectional else 1)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=None)
    ap.add_argument("--sst", default="../shared/data/sst5")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    loaded = api.load_model(args.model)
    dev = list(read_examples(Path(args.sst) / "dev.txt"))
    peak = ceiling()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads: torch.mm ceiling {peak:.1f} GFLOP/s")

    predictor = Predictor(loaded)
    texts = [e.text for e in dev]
    predictor.predict(texts)  # warm-up
    t0 = time.perf_counter()
    predictor.predict(texts)
    wall = time.perf_counter() - t0
    ids = [loaded.vocab.encode(predictor.tokens(t)) for t in texts]
    tokens = sum(len(i) for i in ids)
    t0 = time.perf_counter()
    predict_proba(loaded.model, ids)
    model_wall = time.perf_counter() - t0
    gflops = 2 * macs_per_token(loaded.config) * tokens / model_wall / 1e9
    print(f"batch, SST-5 dev: {len(texts) / wall:,.0f} sentences/s end to end ({len(texts) / model_wall:,.0f}/s "
          f"model only), {gflops:.1f} GFLOP/s = {gflops / peak:.1%} of the ceiling")

    long_reviews = []
    for k in range(0, len(dev) - 25, 25):
        long_reviews.append(" ".join(t for e in dev[k:k + 25] for t in e.tokens))
    for name, sample in (("dev sentence", texts[:300]), ("~400-word review", long_reviews[:40])):
        lat = []
        for t in sample:
            t0 = time.perf_counter()
            predictor.predict([t])
            lat.append(time.perf_counter() - t0)
        lat.sort()
        print(f"single {name}: p50 {statistics.median(lat) * 1000:.2f} ms, "
              f"p99 {lat[min(len(lat) - 1, int(0.99 * len(lat)))] * 1000:.2f} ms ({len(lat)} texts)")


if __name__ == "__main__":
    main()
