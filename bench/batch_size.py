"""Model-only prediction throughput of the bundled model on SST-5 dev at several batch sizes.

    python bench/batch_size.py [--sst ../shared/data/sst5] [--rounds 6]

Sizes are interleaved round by round; the best and the median round are printed per size.
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from reviewlstm import api
from reviewlstm.nn.fourgate import compiled
from reviewlstm.io.data import read_examples
from reviewlstm.inference.predict import Predictor, predict_proba

from common import sst_arg


def main() -> None:
    ap = argparse.ArgumentParser()
    sst_arg(ap)
    ap.add_argument("--rounds", type=int, default=6)
    args = ap.parse_args()
    compiled.load()
    loaded = api.load_model()
    predictor = Predictor(loaded)
    ids = [loaded.vocab.encode(predictor.tokens(e.text)) for e in read_examples(Path(args.sst) / "dev.txt")]
    sizes = (64, 128, 256, 512)
    for size in sizes:
        predict_proba(loaded.model, ids, size)  # warm-up
    rates = {size: [] for size in sizes}
    for _ in range(args.rounds):
        for size in sizes:
            t0 = time.perf_counter()
            predict_proba(loaded.model, ids, size)
            rates[size].append(len(ids) / (time.perf_counter() - t0))
    for size, r in rates.items():
        print(f"batch {size}: best {max(r):,.0f}/s, median {statistics.median(r):,.0f}/s")


if __name__ == "__main__":
    main()
