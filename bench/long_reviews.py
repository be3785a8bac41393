"""Long reviews: read a 400-word review whole, or sentence by sentence and average?

    python bench/long_reviews.py [--model DIR] [--n 300] [--sst ../shared/data/sst5]

Builds long reviews from SST-5 dev sentences (never from train): pick a rating r, then draw
sentences rated r (half the time) or r±1 (a quarter each) until the review has at least 400 words;
its label is the mean of its sentences' ratings, rounded. Both readings are scored: accuracy
against the rounded mean, MAE of the expected rating against the exact mean, and throughput.
"""
from __future__ import annotations

import argparse
import random
import time
from pathlib import Path

import numpy as np

from reviewlstm import api
from reviewlstm.io.data import read_examples
from reviewlstm.inference.predict import Predictor

from common import sst_arg


def build_reviews(sst: Path, n: int, min_words: int, seed: int):
    by_rating: dict[int, list] = {}
    for e in read_examples(sst / "dev.txt"):
        by_rating.setdefault(e.rating, []).append(e)
    rng = random.Random(seed)
    reviews = []
    for _ in range(n):
        r = rng.randint(1, 5)
        tokens, ratings = [], []
        while len(tokens) < min_words:
            pick = rng.choices([r - 1, r, r + 1], weights=[0.25, 0.5, 0.25])[0]
            pick = min(max(pick, 1), 5)
            e = rng.choice(by_rating[pick])
            tokens += e.tokens
            ratings.append(e.rating)
        reviews.append((tokens, float(np.mean(ratings))))
    return reviews


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=None)
    sst_arg(ap)
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--min-words", type=int, default=400)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    loaded = api.load_model(args.model)
    reviews = build_reviews(Path(args.sst), args.n, args.min_words, args.seed)
    mean_len = np.mean([len(t) for t, _ in reviews])
    print(f"{len(reviews)} long reviews, {mean_len:.0f} tokens on average, model {loaded.path}")
    print("| reading | accuracy (rounded mean) | MAE of expected rating | reviews/s |")
    print("|---|---|---|---|")
    for mode in ("whole", "sentences"):
        predictor = Predictor(loaded, long_text=mode)
        # max_length is raised for "whole" so the review really is read whole, not truncated
        predictor.config = type(loaded.config)(**{**loaded.config.to_dict(), "max_length": 10_000})
        t0 = time.perf_counter()
        preds = predictor.predict([" ".join(t) for t, _ in reviews], [t for t, _ in reviews])
        rate = len(reviews) / (time.perf_counter() - t0)
        acc = np.mean([p.rating == int(round(m)) for p, (_, m) in zip(preds, reviews)])
        mae = np.mean([abs(p.expected_rating - m) for p, (_, m) in zip(preds, reviews)])
        print(f"| {mode} | {acc:.1%} | {mae:.3f} | {rate:.0f} |", flush=True)


if __name__ == "__main__":
    main()
