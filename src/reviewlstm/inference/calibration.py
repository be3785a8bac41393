"""Confidence that means something: a softmax temperature fitted on held-back reviews, and the
measures of how far a model's probabilities are from the frequencies they claim.

A network trained with cross-entropy is overconfident on new data (Guo et al. 2017, "On Calibration
of Modern Neural Networks"); one scalar T, dividing the logits before the softmax, fitted by the
negative log-likelihood on dev, brings its confidence to its accuracy without moving any rating
(the argmax of logits / T is the argmax of the logits). The model keeps T in its config
(`ModelConfig.temperature`) and every reader applies it (`RatingModel.probabilities`).

    ece    expected calibration error: |accuracy - mean confidence| over 15 equal-width confidence
           bins, weighted by their share of the reviews (confidence: the top rating's probability)
    brier  mean squared distance between the distribution and the one-hot truth, summed over ratings
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

BINS = 15
T_RANGE = (0.05, 20.0)  # the search's bounds: a temperature outside them says something is wrong


def distributions(piece_logits: np.ndarray, owner: np.ndarray, weights: np.ndarray, n: int,
                  temperature: float) -> np.ndarray:
    """(n, K) each text's distribution at `temperature` from the logits of its pieces, averaged with
    `weights` (a long text read sentence by sentence is the length-weighted mean of its sentences'
    distributions: predict.read_distributions's rule)."""
    z = piece_logits / temperature
    z = z - z.max(1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(1, keepdims=True)
    total = np.zeros((n, p.shape[1]))
    np.add.at(total, owner, p * weights[:, None])
    return total / total.sum(1, keepdims=True)


def fit_temperature(piece_logits: np.ndarray, owner: np.ndarray, weights: np.ndarray, truth: np.ndarray) -> float:
    """The T in T_RANGE minimizing the NLL of the truth (rating indices) under the texts'
    distributions: golden-section search on log T (the NLL is smooth and, for one scalar, unimodal
    in practice), to a relative precision of 1e-4."""
    n = len(truth)

    def nll(log_t: float) -> float:
        probs = distributions(piece_logits, owner, weights, n, math.exp(log_t))
        return float(-np.log(np.maximum(probs[np.arange(n), truth], 1e-12)).mean())

    lo, hi = math.log(T_RANGE[0]), math.log(T_RANGE[1])
    g = (math.sqrt(5) - 1) / 2
    a, b = hi - g * (hi - lo), lo + g * (hi - lo)
    fa, fb = nll(a), nll(b)
    while hi - lo > 1e-4:
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - g * (hi - lo)
            fa = nll(a)
        else:
            lo, a, fa = a, b, fb
            b = lo + g * (hi - lo)
            fb = nll(b)
    return round(math.exp((lo + hi) / 2), 4)


def at_bound(temperature: float) -> bool:
    """Whether a fitted temperature sits at an end of T_RANGE: the search ran out, not the data."""
    return temperature <= T_RANGE[0] * 1.001 or temperature >= T_RANGE[1] * 0.999


def ece(probs: np.ndarray, truth: np.ndarray, bins: int = BINS) -> float:
    """Expected calibration error of (N, K) distributions against rating indices (0 for no reviews)."""
    if not len(truth):
        return 0.0
    confidence = probs.max(1)
    correct = (probs.argmax(1) == truth).astype(np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            total += mask.mean() * abs(correct[mask].mean() - confidence[mask].mean())
    return float(total)


def brier(probs: np.ndarray, truth: np.ndarray) -> float:
    if not len(truth):
        return 0.0
    onehot = np.zeros_like(probs)
    onehot[np.arange(len(truth)), truth] = 1.0
    return float(((probs - onehot) ** 2).sum(1).mean())


def reliability(probs: np.ndarray, truth: np.ndarray, bins: int = BINS) -> list[dict]:
    """Per confidence bin with reviews in it: its range, how many, their mean confidence and accuracy."""
    confidence = probs.max(1)
    correct = (probs.argmax(1) == truth).astype(np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    out = []
    for b in range(bins):
        mask = which == b
        if mask.any():
            out.append({"low": float(edges[b]), "high": float(edges[b + 1]), "n": int(mask.sum()),
                        "confidence": float(confidence[mask].mean()), "accuracy": float(correct[mask].mean())})
    return out


def scores(probs: np.ndarray, truth: np.ndarray) -> dict:
    """ECE, Brier and NLL of distributions against rating indices: the calibration half of evaluate."""
    from reviewlstm.inference.metrics import nll
    return {"ece": ece(probs, truth), "brier": brier(probs, truth), "nll": nll(probs, truth)}


def plot_reliability(bins: list[dict], path, title: str = "") -> None:
    """The reliability diagram: accuracy against confidence per bin (the diagonal is perfect
    calibration), the bins' sizes below."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(5, 6), height_ratios=[3, 1], sharex=True)
    mids = [(b["low"] + b["high"]) / 2 for b in bins]
    width = (bins[0]["high"] - bins[0]["low"]) if bins else 1 / BINS
    top.plot([0, 1], [0, 1], ":", color="grey", label="perfect calibration")
    top.bar(mids, [b["accuracy"] for b in bins], width=width * 0.9, color="C0", alpha=0.7, label="accuracy")
    top.plot([b["confidence"] for b in bins], [b["accuracy"] for b in bins], "o", color="C1", ms=4,
             label="mean confidence")
    top.set_ylabel("accuracy")
    top.set_ylim(0, 1)
    top.legend(fontsize=8, loc="upper left")
    top.set_title(title, fontsize=10)
    bottom.bar(mids, [b["n"] for b in bins], width=width * 0.9, color="grey")
    bottom.set_xlabel("confidence (the top rating's probability)")
    bottom.set_ylabel("reviews")
    bottom.set_xlim(0, 1)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


@dataclass
class Reading:
    """Texts as a model read them, before any temperature: the logits of their pieces (a text read
    whole is one piece; one read sentence by sentence, one piece a sentence) and how the pieces
    make the texts."""
    logits: np.ndarray   # (P, K) float64, each piece's raw logits
    owner: np.ndarray    # (P,) the index of the text each piece belongs to
    weights: np.ndarray  # (P,) each piece's weight in its text's mean: its length
    n: int               # texts

    def distributions(self, temperature: float = 1.0) -> np.ndarray:
        """(n, K) each text's distribution at `temperature`."""
        return distributions(self.logits, self.owner, self.weights, self.n, temperature)


def read(model, piece_ids: list[list[list[int]]]) -> Reading:
    """`model`'s Reading of texts given as the ids of their pieces (as predict.read_distributions
    takes them)."""
    from reviewlstm.inference.predict import predict_proba
    flat = [p for pieces in piece_ids for p in pieces]
    owner = np.repeat(np.arange(len(piece_ids)), [len(pieces) for pieces in piece_ids])
    weights = np.asarray([max(len(p), 1) for p in flat], dtype=np.float64)
    return Reading(predict_proba(model, flat, logits=True).astype(np.float64), owner, weights, len(piece_ids))


def fit_reading(reading: Reading, truth: np.ndarray) -> tuple[float, dict, dict, np.ndarray]:
    """Fit the temperature on a Reading with rating indices `truth`. Returns (T, scores at T = 1,
    scores at T, the texts' distributions at T)."""
    temperature = fit_temperature(reading.logits, reading.owner, reading.weights, truth)
    after = reading.distributions(temperature)
    return temperature, scores(reading.distributions(1.0), truth), scores(after, truth), after


def fit(model, piece_ids: list[list[list[int]]], truth: np.ndarray) -> tuple[float, dict, dict, np.ndarray]:
    """Fit the temperature of `model` on texts given as the ids of their pieces with rating indices
    `truth`; the model is read once. Returns what fit_reading does."""
    return fit_reading(read(model, piece_ids), truth)
