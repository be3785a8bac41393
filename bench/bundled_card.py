"""The bundled model against its own card, on SST-5's full dev set (tests use a 220-tree sample).

    python bench/bundled_card.py [--sst ../shared/data/sst5]

Evaluates the bundled model on dev read whole (as its dev checks were read in training) and
exits 1 unless every figure of metadata.json's dev_metrics is reproduced to 1e-9.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from reviewlstm import api

from common import sst_arg


def main() -> int:
    ap = argparse.ArgumentParser()
    sst_arg(ap)
    args = ap.parse_args()
    loaded = api.load_model()
    claimed = loaded.metadata["dev_metrics"]
    scores = api.evaluate(Path(args.sst) / "dev.txt", long_text="whole")
    bad = []
    for key in ("accuracy", "macro_f1", "mae", "within_one", "qwk"):
        if key in claimed:
            ok = abs(scores[key] - claimed[key]) < 1e-9
            print(f"{key:12s} card {claimed[key]:.4f}  measured {scores[key]:.4f}  {'ok' if ok else 'DIFFERS'}")
            bad += [] if ok else [key]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
