"""Prediction speed of a model against the machine's own ceiling and its peers, in one run.

    python bench/speed.py [--model DIR] [--threads N] [--no-peers]

- ceiling: GFLOP/s of a 2048 x 2048 float32 torch.mm (the thread count printed);
- batch prediction on SST-5 dev (sentences/s) and the achieved GFLOP/s of the recurrent layer,
  counting the multiply-adds of the equations (four-gate LSTM: 4H(E+H) + H^2 per token and direction);
  beside it the same pipeline with torch.nn.LSTM (same sizes, packed sequences, untrained: speed only);
- single-review latency in process (p50, p99) on dev sentences and on ~400-word reviews;
- peers (unless --no-peers): TF-IDF + logistic regression and fastText, trained here on SST-5 phrases,
  measured on the same texts the same ways.
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
from reviewlstm.inference.predict import Predictor, pad_batch, predict_proba

from bench_cells import gemm_ceilings  # the same ceiling as the cells table (bench/ is on the path)

from common import fasttext_supervised, sst_arg, tfidf_lr


def macs_per_token(cfg) -> int:
    E, H = cfg.embed_dim, cfg.hidden
    per_dir = {"lstm": 4 * H * (E + H) + H * H, "classic-lstm": 4 * H * (E + H), "rnn": H * (E + H)}[cfg.cell]
    return per_dir * (2 if cfg.bidirectional else 1)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=None)
    sst_arg(ap)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--no-peers", dest="peers", action="store_false")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    loaded = api.load_model(args.model)
    dev = list(read_examples(Path(args.sst) / "dev.txt"))
    compiled.load()
    peak = max(gemm_ceilings().values())  # the best GEMM the cores run: the cells table's ceiling
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads: torch.mm ceiling {peak:.1f} GFLOP/s; "
          f"kernel {compiled.status()}")

    predictor = Predictor(loaded)
    texts = [e.text for e in dev]
    predictor.predict(texts)  # warm-up
    t0 = time.perf_counter()
    predictor.predict(texts)
    wall = time.perf_counter() - t0
    ids = [loaded.vocab.encode(predictor.tokens(t)) for t in texts]
    tokens = sum(len(i) for i in ids)
    # model only, this pipeline and the nn.LSTM one in alternation, 5 passes each: the best pass is
    # what the model can do (the ceiling is a best of rounds too), the median what a pass usually got
    reference = NNLSTMReference(loaded)
    reference.predict_ids(ids)
    ours, theirs = [], []
    for _ in range(5):
        t0 = time.perf_counter()
        predict_proba(loaded.model, ids)
        ours.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        reference.predict_ids(ids)
        theirs.append(time.perf_counter() - t0)
    gflops = [2 * macs_per_token(loaded.config) * tokens / w / 1e9 for w in sorted(ours)]
    print(f"batch, SST-5 dev: {len(texts) / wall:,.0f} sentences/s end to end; model only, best of 5 passes: "
          f"{len(texts) / min(ours):,.0f}/s, {gflops[0]:.1f} GFLOP/s = {gflops[0] / peak:.1%} of the ceiling "
          f"(median pass {gflops[2] / peak:.1%})")
    print(f"batch, SST-5 dev, model only: torch.nn.LSTM BiLSTM of the same sizes {len(ids) / min(theirs):,.0f}/s; "
          f"reviewlstm / nn.LSTM = {min(theirs) / min(ours):.2f} (best passes), "
          f"{statistics.median(theirs) / statistics.median(ours):.2f} (medians)")

    long_reviews = []
    for k in range(0, len(dev) - 25, 25):
        long_reviews.append(" ".join(t for e in dev[k:k + 25] for t in e.tokens))
    t0 = time.perf_counter()
    predictor.predict(long_reviews)
    print(f"batch, {len(long_reviews)} ~400-word reviews (sentence by sentence): "
          f"{len(long_reviews) / (time.perf_counter() - t0):,.1f} reviews/s")

    rows = [("reviewlstm (default model)", lambda t: predictor.predict([t]), predictor.predict),
            ("torch.nn.LSTM BiLSTM, same pipeline", lambda t: reference.predict_texts([t]), reference.predict_texts)]
    if args.peers:
        train = list(read_examples(Path(args.sst) / "train.txt", phrases=True))
        for name, peer in peers([e.text for e in train], [e.rating for e in train]):
            rows.append((name, lambda t, p=peer: p([t]), peer))
    print("\n| model | batch dev sentences/s | batch 400-word reviews/s | single sentence p50 / p99 ms | "
          "single 400-word review p50 / p99 ms |")
    print("|---|---|---|---|---|")
    for name, one, many in rows:
        many(texts[:50])
        cells = []
        for sample in (texts, long_reviews):
            t0 = time.perf_counter()
            many(sample)
            cells.append(f"{len(sample) / (time.perf_counter() - t0):,.0f}")
        for sample in (texts[:300], long_reviews[:40]):
            lat = []
            for t in sample:
                t0 = time.perf_counter()
                one(t)
                lat.append(time.perf_counter() - t0)
            lat.sort()
            cells.append(f"{statistics.median(lat) * 1000:.2f} / {lat[min(len(lat) - 1, int(0.99 * len(lat)))] * 1000:.2f}")
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)


class NNLSTMReference:
    """The same pipeline (tokens, vocabulary, embedding, BiLSTM, final states, head) on torch.nn.LSTM,
    untrained: a yardstick for speed only. Batches sorted longest first, packed."""

    def __init__(self, loaded):
        from torch import nn
        cfg = loaded.config
        self.loaded, self.predictor = loaded, Predictor(loaded, long_text="whole")
        self.embed = nn.Embedding(cfg.vocab_size, cfg.embed_dim)
        self.rnn = nn.LSTM(cfg.embed_dim, cfg.hidden, batch_first=True, bidirectional=cfg.bidirectional)
        self.head = nn.Linear(cfg.hidden * (2 if cfg.bidirectional else 1), len(cfg.ratings))

    @torch.inference_mode()
    def predict_ids(self, id_lists, batch_size=256):
        from torch.nn.utils.rnn import pack_padded_sequence
        order = sorted(range(len(id_lists)), key=lambda i: -len(id_lists[i]))
        out = torch.zeros(len(id_lists), self.head.out_features)
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            ids, lengths = pad_batch([id_lists[i] for i in idx])
            packed = pack_padded_sequence(self.embed(ids), lengths, batch_first=True, enforce_sorted=True)
            _, (h, _) = self.rnn(packed)
            out[idx] = torch.softmax(self.head(torch.cat(list(h), dim=1)), dim=1)
        return out

    def predict_texts(self, texts):
        return self.predict_ids([self.loaded.vocab.encode(self.predictor.tokens(t)[:400]) for t in texts])


def peers(train_texts, train_y):
    """(name, predict(texts)) for TF-IDF + logistic regression and fastText (bench/common.py's, the
    peers every benchmark here reports), trained on the given texts, lower-cased as the student reads."""
    lowered = [t.lower() for t in train_texts]
    for name, fit in (("TF-IDF + logistic regression (phrases)", tfidf_lr),
                      ("fastText supervised (phrases)", fasttext_supervised)):
        predict = fit(lowered, list(train_y))
        yield name, lambda texts, predict=predict: predict([t.lower() for t in texts])


if __name__ == "__main__":
    main()
