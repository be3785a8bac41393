"""Scores for ordered ratings: accuracy, macro-F1, MAE in stars, within one star, quadratic weighted kappa."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def confusion(true: list[int], pred: list[int], ratings: list[int]) -> np.ndarray:
    """(K, K) counts, rows the true rating, columns the predicted one."""
    index = {r: i for i, r in enumerate(ratings)}
    m = np.zeros((len(ratings), len(ratings)), dtype=np.int64)
    for t, p in zip(true, pred):
        m[index[t], index[p]] += 1
    return m


def quadratic_weighted_kappa(m: np.ndarray) -> float:
    """Cohen's kappa with (i - j)^2 disagreement weights: 1 is perfect, 0 is chance."""
    K, n = m.shape[0], m.sum()
    if n == 0:
        return 0.0
    i, j = np.meshgrid(np.arange(K), np.arange(K), indexing="ij")
    weights = (i - j) ** 2 / max((K - 1) ** 2, 1)
    expected = np.outer(m.sum(1), m.sum(0)) / n
    denom = (weights * expected).sum()
    return float(1.0 - (weights * m).sum() / denom) if denom else 0.0


def score(true: list[int], pred: list[int], expected: list[float] | None, ratings: list[int]) -> dict:
    """Every metric of `reviewlstm evaluate`, as plain JSON-able numbers."""
    t, p = np.asarray(true), np.asarray(pred)
    m = confusion(true, pred, ratings)
    precision = np.divide(np.diag(m), m.sum(0), out=np.zeros(len(ratings)), where=m.sum(0) > 0)
    recall = np.divide(np.diag(m), m.sum(1), out=np.zeros(len(ratings)), where=m.sum(1) > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros(len(ratings)),
                   where=(precision + recall) > 0)
    out = {
        "n": int(len(t)),
        "accuracy": float((t == p).mean()) if len(t) else 0.0,
        "macro_f1": float(f1.mean()),
        "mae": float(np.abs(t - p).mean()) if len(t) else 0.0,
        "within_one": float((np.abs(t - p) <= 1).mean()) if len(t) else 0.0,
        "qwk": quadratic_weighted_kappa(m),
        "per_class": {str(r): {"precision": float(precision[k]), "recall": float(recall[k]), "f1": float(f1[k]),
                               "support": int(m[k].sum())} for k, r in enumerate(ratings)},
        "confusion": m.tolist(),
        "ratings": list(ratings),
    }
    if expected is not None and len(t):
        out["mae_expected"] = float(np.abs(t - np.asarray(expected)).mean())
    return out


def nll(probs: np.ndarray, truth: np.ndarray) -> float:
    """Mean negative log-likelihood of the true rating indices under (N, K) distributions, each
    probability floored so one certain miss is not infinite; 0.0 for no examples."""
    if not len(truth):
        return 0.0
    return float(-np.log(np.maximum(probs[np.arange(len(truth)), truth], 1e-12)).mean())


def format_report(s: dict) -> str:
    """The metrics and the confusion matrix as a terminal table."""
    lines = [f"n={s['n']}  accuracy {s['accuracy']:.1%}  macro-F1 {s['macro_f1']:.3f}  MAE {s['mae']:.3f} stars  "
             f"within ±1 {s['within_one']:.1%}  QWK {s['qwk']:.3f}"]
    if "majority" in s:
        m = s["majority"]
        lines.append(f"always {m['rating']} (the file's commonest rating): accuracy {m['accuracy']:.1%}  MAE {m['mae']:.3f}"
                     + ("  <- the model is no more accurate than this" if s["accuracy"] <= m["accuracy"] else ""))
    if "ece" in s:
        lines.append(f"calibration: ECE {s['ece']:.1%}  Brier {s['brier']:.3f}  NLL {s['nll']:.3f}"
                     + (f"  (temperature {s['temperature']:g})" if s.get("temperature", 1.0) != 1.0 else
                        "  (uncalibrated: no temperature fitted)"))
    lines += ["", "rating  precision  recall   f1     support"]
    for r, c in s["per_class"].items():
        lines.append(f"{r:>6}  {c['precision']:9.3f}  {c['recall']:6.3f}  {c['f1']:.3f}  {c['support']:>7}")
    ratings = s["ratings"]
    lines += ["", "confusion (rows true, columns predicted)", "      " + "".join(f"{r:>7}" for r in ratings)]
    for r, row in zip(ratings, s["confusion"]):
        lines.append(f"{r:>6}" + "".join(f"{v:>7}" for v in row))
    return "\n".join(lines)


def format_side_by_side(results: dict[str, dict]) -> str:
    """Several models' metrics on one file, one column each (e.g. a distilled model and its teacher)."""
    names = list(results)
    rows = [("n", lambda m: f"{m['n']}"), ("accuracy", lambda m: f"{m['accuracy']:.1%}"),
            ("macro-F1", lambda m: f"{m['macro_f1']:.3f}"), ("MAE (stars)", lambda m: f"{m['mae']:.3f}"),
            ("within ±1", lambda m: f"{m['within_one']:.1%}"), ("QWK", lambda m: f"{m['qwk']:.3f}")]
    width = max(12, *(len(n) for n in names))
    lines = [" " * 12 + "".join(f"{n:>{width + 2}}" for n in names)]
    lines += [f"{label:<12}" + "".join(f"{fmt(results[n]):>{width + 2}}" for n in names) for label, fmt in rows]
    lines += ["", *(f"{n}: {results[n].get('model', '?')}" for n in names)]
    return "\n".join(lines)


def plot_confusion(s: dict, path: str | Path, title: str = "") -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m = np.asarray(s["confusion"])
    ratings = s["ratings"]
    fig, ax = plt.subplots(figsize=(5, 4.4))
    norm = m / np.maximum(m.sum(1, keepdims=True), 1)
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(ratings)):
        for j in range(len(ratings)):
            ax.text(j, i, str(m[i, j]), ha="center", va="center", color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xticks(range(len(ratings)), ratings)
    ax.set_yticks(range(len(ratings)), ratings)
    ax.set_xlabel("predicted rating")
    ax.set_ylabel("true rating")
    ax.set_title(title or f"accuracy {s['accuracy']:.1%}, MAE {s['mae']:.2f}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_curves(curves: dict, path: str | Path) -> None:
    """Training as a picture: the training loss and the dev NLL on the left; dev accuracy and MAE at
    every check on the right, the kept checkpoint marked and the untouched slice's score beside it."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = curves["history"]
    at = [r["epoch"] for r in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    left.plot(at, [r["train_loss"] for r in rows], "o-", ms=3, label="training loss")
    if any("dev_nll" in r for r in rows):
        left.plot(at, [r.get("dev_nll") for r in rows], "o-", ms=3, label="dev NLL")
    left.set_xlabel("epoch")
    left.set_title("loss")
    left.legend(fontsize=8)
    kept = curves.get("kept_epoch")
    if any("dev_accuracy" in r for r in rows):
        right.plot(at, [r.get("dev_accuracy") for r in rows], "o-", ms=3, color="C0", label="dev accuracy")
        mae = right.twinx()
        mae.plot(at, [r.get("dev_mae") for r in rows], "s--", ms=3, color="C1", label="dev MAE")
        mae.set_ylabel("MAE (stars)", color="C1")
        right.set_ylabel("accuracy", color="C0")
        majority = (curves.get("majority") or {}).get("dev")
        if majority:  # the floor a model must clear: always the commonest rating
            right.axhline(majority["accuracy"], color="C0", ls="--", lw=1, alpha=0.6,
                          label="dev accuracy of always the commonest rating")
        slice_ = curves.get("holdout") or {}
        if isinstance(kept, (int, float)):
            for ax in (left, right):
                ax.axvline(kept, color="grey", ls=":", lw=1)
            right.annotate("kept", (kept, right.get_ylim()[1]), ha="center", va="bottom", fontsize=8, color="grey")
            if slice_:
                # the accuracy axes drawn above the MAE twin (else MAE's line hides the slice's star), and
                # both stars outlined above their own lines
                right.set_zorder(mae.get_zorder() + 1)
                right.patch.set_visible(False)
                right.plot([kept], [slice_["accuracy"]], "*", ms=13, color="C2", mec="black", mew=0.8, zorder=5,
                           label="slice accuracy (kept model)")
                mae.plot([kept], [slice_["mae"]], "*", ms=13, color="C3", mec="black", mew=0.8, zorder=5,
                         label="slice MAE (kept model)")
        lines = right.get_legend_handles_labels()[0] + mae.get_legend_handles_labels()[0]
        right.legend(lines, [h.get_label() for h in lines], fontsize=8, loc="center right")
        right.set_title("dev at every check")
    else:
        right.text(0.5, 0.5, "no dev set: nothing was checked", ha="center", va="center", transform=right.transAxes)
        right.set_axis_off()
    right.set_xlabel("epoch")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
