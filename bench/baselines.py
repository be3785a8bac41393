"""Peers on the same splits and machine: TF-IDF + logistic regression (scikit-learn) and fastText supervised.

    pip install scikit-learn fasttext-numpy2
    python bench/baselines.py [--sst ../shared/data/sst5]

Each is trained on SST-5 train (sentences, and every labelled phrase) and scored on dev sentences:
accuracy, MAE in stars, training wall time and prediction throughput (sentences per second).
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from reviewlstm.data import read_examples
from reviewlstm.metrics import score


def tfidf_lr(train_texts, train_y, dev_texts):
    """The package's own baseline (reviewlstm.baseline: the one distill checks its teacher against and
    bench/peers.py reports), on lower-cased tokens as the student reads them."""
    from reviewlstm.baseline import TfidfLR
    t0 = time.perf_counter()
    model = TfidfLR.fit([t.lower() for t in train_texts], list(train_y))
    train_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    pred = np.asarray(model.predict([t.lower() for t in dev_texts]))
    return pred, train_s, len(dev_texts) / (time.perf_counter() - t0)


def fasttext_supervised(train_texts, train_y, dev_texts):
    import fasttext
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        for t, y in zip(train_texts, train_y):
            f.write(f"__label__{y} {t.lower()}\n")
        path = f.name
    t0 = time.perf_counter()
    model = fasttext.train_supervised(path, epoch=10, lr=0.5, wordNgrams=2, dim=50, verbose=0, seed=0, thread=2)
    train_s = time.perf_counter() - t0
    os.unlink(path)
    t0 = time.perf_counter()
    labels, _ = model.predict([t.lower() for t in dev_texts])
    rate = len(dev_texts) / (time.perf_counter() - t0)
    return np.array([int(l[0].replace("__label__", "")) for l in labels]), train_s, rate


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sst", default="../shared/data/sst5")
    ap.add_argument("--json", default=None, help="also write the results here")
    args = ap.parse_args()
    sst = Path(args.sst)
    dev = list(read_examples(sst / "dev.txt"))
    dev_texts, dev_y = [e.text for e in dev], [e.rating for e in dev]
    results = []
    for level in ("sentences", "phrases"):
        train = list(read_examples(sst / "train.txt", phrases=level == "phrases"))
        texts, y = [e.text for e in train], [e.rating for e in train]
        for name, fn in (("TF-IDF + logistic regression", tfidf_lr), ("fastText supervised", fasttext_supervised)):
            pred, train_s, rate = fn(texts, y, dev_texts)
            s = score(dev_y, list(map(int, pred)), None, [1, 2, 3, 4, 5])
            row = {"model": name, "training": level, "dev_accuracy": s["accuracy"], "dev_mae": s["mae"],
                   "train_seconds": round(train_s, 1), "sentences_per_second": round(rate)}
            results.append(row)
            print(f"| {name} | {level} | {s['accuracy']:.1%} | {s['mae']:.3f} | {train_s:.1f} s | {rate:,.0f}/s |", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
