"""What the two training loops share (the student's in train.py, the teacher's in teacher.py): the
optimizer, and the rule that picks the kept check and says when to stop.

Batches come from batching.py and checkpoints go through checkpoint.py, both shared the same way.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch


def adamw(model: torch.nn.Module, lr: float, weight_decay: float,
          decays: Callable[[str, torch.nn.Parameter], bool] | None = None, fused: bool = False):
    """AdamW over the parameters that train, in two groups: `weight_decay` on those `decays(name,
    parameter)` says (by default the matrices), none on the rest (biases, and whatever else the caller
    leaves out). fused: one pass over each parameter per step, where it is supported."""
    decays = decays or (lambda name, p: p.dim() > 1)
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    groups = [{"params": [p for n, p in named if decays(n, p)], "weight_decay": weight_decay},
              {"params": [p for n, p in named if not decays(n, p)], "weight_decay": 0.0}]
    if fused:
        try:
            return torch.optim.AdamW(groups, lr=lr, fused=True)
        except (RuntimeError, TypeError):  # a device without the fused kernel
            pass
    return torch.optim.AdamW(groups, lr=lr)


Score = tuple[float, float]


def score(metrics: dict) -> Score:
    """A dev check's score: accuracy, ties broken by the lower NLL. Accuracy alone ties for whole
    epochs on skewed data (every check "always 5 stars") and would stop training before it starts
    to learn; the NLL breaks the ties."""
    return metrics["accuracy"], -metrics["nll"]


@dataclass
class Selection:
    """The kept check and when to stop, over a run's dev checks.

    `offer` each check's score: the best so far is kept (`best`, `best_epoch`); a check with neither a
    better score nor a better NLL is stale, and `stale` counts them in a row (the caller stops at its
    patience); with `keep_top` K > 1 the K best checks' weights are kept too, for averaging. Its state
    goes into the run's checkpoint, so a resumed run chooses as the uninterrupted one would."""
    keep_top: int = 0
    best: Score = (-1.0, -math.inf)
    best_epoch: float = 0
    best_nll: float = math.inf
    stale: int = 0
    top: list = field(default_factory=list)  # (score, weights), best first: not kept across --resume

    def offer(self, check_score: Score, epoch: float, nll: float | None = None,
              weights: Callable[[], dict] | None = None) -> bool:
        """Record a check; True when it is the best so far. weights: called only when the top K keep it."""
        improved = check_score > self.best
        progress = improved or (nll is not None and nll < self.best_nll)
        if nll is not None:
            self.best_nll = min(self.best_nll, nll)
        self.stale = 0 if progress else self.stale + 1
        if weights is not None and self.keep_top > 1:
            self.top.append((check_score, weights()))
            self.top = sorted(self.top, key=lambda t: t[0], reverse=True)[:self.keep_top]
        if improved:
            self.best, self.best_epoch = check_score, epoch
        return improved

    def state(self) -> dict:
        return {"best": list(self.best), "best_epoch": self.best_epoch, "best_nll": self.best_nll, "stale": self.stale}

    @classmethod
    def from_state(cls, state: dict, keep_top: int = 0) -> "Selection":
        best = tuple(map(float, state["best"]))
        return cls(keep_top, best, state["best_epoch"], float(state.get("best_nll", -best[1])), int(state["stale"]))


SHARES = tuple(round(0.05 * i, 2) for i in range(21))  # a mixture's share of its first reader, 0 to 1


def mixture_metrics(first: np.ndarray, second: np.ndarray, share: float, truth: np.ndarray, ratings) -> dict:
    """The scores (and NLL) of share x `first` + (1 - share) x `second`, distributions (N, K) over
    `ratings`, against the rating indices `truth`."""
    from reviewlstm.inference import metrics
    from reviewlstm.inference.predict import rating_and_expected
    mixed = share * first + (1 - share) * second
    best, expected = rating_and_expected(mixed, ratings)
    truth_ratings = (truth + ratings[0]).tolist()
    return {**metrics.score(truth_ratings, best.tolist(), expected.tolist(), ratings), "nll": metrics.nll(mixed, truth)}


def mixture_share(first: np.ndarray, second: np.ndarray, truth: np.ndarray, ratings,
                  rule: str = "checkpoint") -> tuple[float, dict]:
    """(the first reader's share, the mixture's metrics): the share in SHARES whose mixture scores
    best on these reviews, by the rule that keeps a checkpoint ("checkpoint": accuracy, ties broken
    by NLL) or by the NLL alone ("nll": a proper score, smooth in the share, so a few hundred reviews
    choose it with less noise than accuracy's steps); ties go to the larger share of the first (the
    teacher; the recurrent path)."""
    key = score if rule == "checkpoint" else (lambda m: -m["nll"])
    scored = [(key(m), w, m) for w in SHARES for m in [mixture_metrics(first, second, w, truth, ratings)]]
    best = max(scored, key=lambda t: (t[0], t[1]))
    return best[1], best[2]


@dataclass
class CrossFit:
    """Dev read out of selection: the checkpoint choice cross-fitted over two halves of dev.

    Early stopping keeps the best of many dev checks, so dev read by the kept check flatters it (a
    maximum over noise); a share or a temperature chosen there favours the recurrent path. Here each
    half of dev (`second`: a text's half) keeps the check that scores best on it by `score`'s rule,
    and each text counts as read by the check the *other* half chose (`chosen`): no text's reading was
    chosen by looking at it. The kept model is still the check best on all of dev; only what is
    chosen after training (the n-gram share, the temperature) reads this. `offer` every check: its
    texts' distributions (scored per half) and what to keep of its reading (any object)."""
    second: np.ndarray  # (N,) bool: the text's half (True: the second)
    truth: np.ndarray   # (N,) rating indices
    ratings: list
    best: list = field(default_factory=lambda: [(-1.0, -math.inf), (-1.0, -math.inf)])
    chosen: list = field(default_factory=lambda: [None, None])  # per half: its best check's reading
    epochs: list = field(default_factory=lambda: [None, None])  # per half: when that check was

    def offer(self, probs: np.ndarray, reading, epoch: float) -> None:
        for half in (0, 1):
            rows = self.second == bool(half)
            half_score = score(mixture_metrics(probs[rows], probs[rows], 1.0, self.truth[rows], self.ratings))
            if half_score > self.best[half]:
                self.best[half], self.chosen[half], self.epochs[half] = half_score, reading, epoch

    @property
    def ready(self) -> bool:
        """Both halves have chosen a check (not so after a --resume that ran no check)."""
        return all(c is not None for c in self.chosen)
