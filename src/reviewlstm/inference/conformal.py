"""Rating sets with a guarantee: split conformal prediction for ordered ratings.

A prediction can carry the smallest run of neighbouring ratings that holds the true rating with a
chosen probability ("4, and with 90% coverage 3-5"), whatever the model and however it errs, as long
as new reviews are exchangeable with the ones it was calibrated on.

The set grows from the most likely rating one neighbour at a time, always taking the more probable
of the two neighbours: a run of ratings, never a set with holes (ratings are ordered). A review's
score is the probability mass the run holds just before its true rating joins (0 when that is the
most likely rating); the set at threshold q takes every rating whose score is at most q, so it is
never empty. On n held-back reviews (the validation slice: it was never used for a choice), q is
the ceil((n + 1) x coverage)-th smallest score; then P(true rating in set) >= coverage for a new
review (Vovk et al. 2005; the ordinal growth is Lu et al. 2022's). The model keeps the sorted scores
(`metadata["conformal"]`), so any coverage can be asked for at prediction time.
"""
from __future__ import annotations

import math

import numpy as np


def _growth(p: np.ndarray) -> tuple[list[int], np.ndarray]:
    """The order in which one distribution's ratings join the set, and the mass the run holds just
    before each joins (0 for the first)."""
    lo = hi = int(np.argmax(p))
    order = [lo]
    while len(order) < len(p):
        left = p[lo - 1] if lo > 0 else -1.0
        right = p[hi + 1] if hi + 1 < len(p) else -1.0
        if right > left:  # ties go to the lower rating: a fixed rule, the same at calibration and use
            hi += 1
            order.append(hi)
        else:
            lo -= 1
            order.append(lo)
    return order, np.concatenate([[0.0], np.cumsum(p[order])[:-1]])


def scores(probs: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Each review's score: the run's mass just before its true rating (an index) joins."""
    out = np.empty(len(truth))
    for i, (p, t) in enumerate(zip(probs, truth)):
        order, mass = _growth(p)
        out[i] = mass[order.index(int(t))]
    return out


def threshold(sorted_scores, coverage: float) -> float:
    """q for `coverage` from n calibration scores: the ceil((n + 1) coverage)-th smallest; above 1 (every
    rating) when n is too small for the coverage asked."""
    if not 0 < coverage < 1:
        raise ValueError(f"coverage must be between 0 and 1 (exclusive), got {coverage}")
    n = len(sorted_scores)
    k = math.ceil((n + 1) * coverage)
    return float(sorted_scores[k - 1]) if k <= n else math.inf


def rating_set(p: np.ndarray, q: float) -> tuple[int, int]:
    """(first, last) rating index of the set {ratings whose score here is at most q} (1e-9 for
    rounding): the run grown while the mass it holds is within q; every rating when q is above 1."""
    order, before = _growth(p)
    k = int(np.searchsorted(before, q + 1e-9, side="right")) if q <= 1 else len(order)
    chosen = order[:max(k, 1)]
    return min(chosen), max(chosen)


def check(found, where: str) -> dict:
    """`found` (a model's metadata["conformal"]) if it is what `calibrate` writes, else ValueError
    naming `where` and the field: sorted finite scores in [0, 1], as many as `n` says."""
    if not isinstance(found, dict):
        raise ValueError(f"{where}: conformal must be an object with scores and n, got {type(found).__name__}")
    scores_ = found.get("scores")
    if not isinstance(scores_, list) or not scores_:
        raise ValueError(f"{where}: conformal.scores must be a non-empty list of numbers, got "
                         f"{type(scores_).__name__ if not isinstance(scores_, list) else 'an empty list'}")
    for i, v in enumerate(scores_):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 1:  # NaN fails 0 <= v too
            raise ValueError(f"{where}: conformal.scores[{i}] must be a number in [0, 1], got {v!r}"[:300])
    if any(b < a for a, b in zip(scores_, scores_[1:])):
        raise ValueError(f"{where}: conformal.scores must be sorted from smallest to largest")
    n = found.get("n")
    if isinstance(n, bool) or not isinstance(n, int) or n != len(scores_):
        raise ValueError(f"{where}: conformal.n must be the number of scores ({len(scores_)}), got {n!r}")
    return found


def digest(found) -> str:
    """The sha256 a model's metadata records for its rating-set calibration (what changes a set)."""
    import hashlib
    import json
    return hashlib.sha256(json.dumps(found, sort_keys=True).encode("utf-8")).hexdigest()


def kept(loaded) -> dict:
    """The rating-set calibration a loaded model keeps, or a ValueError saying how to add one."""
    found = (loaded.metadata or {}).get("conformal")
    if not found:
        raise ValueError(f"{loaded.path}: this model has no rating-set calibration (it was trained without a "
                         "validation slice, or before rating sets existed): reviewlstm calibrate FILE --out DIR "
                         "adds one from rated reviews it did not train on")
    return found


def calibrate(probs: np.ndarray, truth: np.ndarray, fitted_on: str) -> dict:
    """What the model keeps: the sorted scores of the held-back reviews."""
    return {"scores": [round(float(s), 6) for s in np.sort(scores(probs, truth))], "n": int(len(truth)),
            "fitted_on": fitted_on}


def evaluate(probs: np.ndarray, truth: np.ndarray, kept: dict, coverage: float) -> dict:
    """Coverage reached on these reviews and the sets' mean size, at `coverage` under `kept`."""
    q = threshold(kept["scores"], coverage)
    sets = [rating_set(p, q) for p in probs]
    inside = [lo <= t <= hi for (lo, hi), t in zip(sets, truth)]
    return {"target": coverage, "reached": float(np.mean(inside)) if len(truth) else 0.0,
            "mean_size": float(np.mean([hi - lo + 1 for lo, hi in sets])) if sets else 0.0,
            "threshold": q, "calibrated_on": kept.get("fitted_on"), "calibration_n": kept.get("n")}
