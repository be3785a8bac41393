"""Two models on the same reviews, paired: SST-5 dev, the untouched validation slice, and both pooled.

    python bench/paired.py --models bench/candidates/sst5-bundled-before-distillation src/reviewlstm/default_model

For each set: each model's accuracy and MAE, the second minus the first with its paired standard
error (the standard deviation of the per-review differences over sqrt(n)), and the share of reviews
the two rate differently. Only those reviews move a paired difference, so the closer two models
agree, the smaller the difference that can be seen; the pooled dev + slice (1,913) narrows what the slice
(812) alone can see. The slice is rebuilt exactly as `train` sets it aside (`split_holdout`).
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np

from reviewlstm import api
from reviewlstm.io.data import BadRows, read_examples
from reviewlstm.inference.predict import Predictor
from reviewlstm.training.config import TrainConfig
from reviewlstm.training.examples import read_rated, split_holdout

from common import sst_arg


def errors(loaded, examples) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(correct, absolute error, rating given) per review, as `evaluate` reads them (SST dev read whole)."""
    preds = Predictor(loaded, long_text="whole").predict([e.text for e in examples], [e.tokens for e in examples])
    truth = np.array([e.rating for e in examples])
    rated = np.array([p.rating for p in preds])
    return (truth == rated).astype(np.float64), np.abs(truth - rated).astype(np.float64), rated


def paired(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(mean of b - a, its paired standard error)."""
    d = b - a
    return float(d.mean()), float(d.std(ddof=1) / math.sqrt(len(d)))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", nargs=2, required=True, help="the reference, then the candidate")
    sst_arg(ap)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    sst = Path(args.sst)
    dev = list(read_examples(sst / "dev.txt", scale=(1, 5), require_rating=True))
    st = TrainConfig(train=str(sst / "train.txt"), phrases=True)
    held = split_holdout(read_rated(str(sst / "train.txt"), st, True, BadRows()), st.holdout)[1]
    sets = {"dev": dev, "slice": held}
    per = {}
    for name in args.models:
        loaded = api.load_model(name)
        per[name] = {k: errors(loaded, v) for k, v in sets.items()}
        per[name]["pooled"] = tuple(np.concatenate([per[name][k][i] for k in sets]) for i in (0, 1, 2))
    ref, cand = args.models
    out = {}
    print(f"reference: {ref}\ncandidate: {cand}\n")
    print("| set | n | reference acc | candidate acc | difference (± paired SE) | reference MAE | candidate MAE | difference (± paired SE) | ratings differ |")
    print("|---|---|---|---|---|---|---|---|---|")
    for k in ("dev", "slice", "pooled"):
        (ca, ea, ra), (cb, eb, rb) = per[ref][k], per[cand][k]
        disagree = float((ra != rb).mean())
        dacc, sacc = paired(ca, cb)
        dmae, smae = paired(ea, eb)
        out[k] = {"n": len(ca), "reference": {"accuracy": ca.mean(), "mae": ea.mean()},
                  "candidate": {"accuracy": cb.mean(), "mae": eb.mean()},
                  "accuracy_difference": dacc, "accuracy_se": sacc, "mae_difference": dmae, "mae_se": smae,
                  "ratings_differ": disagree}
        print(f"| {k} | {len(ca)} | {ca.mean():.1%} | {cb.mean():.1%} | {dacc * 100:+.2f} ± {sacc * 100:.2f} points "
              f"| {ea.mean():.3f} | {eb.mean():.3f} | {dmae:+.4f} ± {smae:.4f} | {disagree:.0%} |")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1, default=float))


if __name__ == "__main__":
    main()
