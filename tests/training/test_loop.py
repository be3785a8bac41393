"""The pieces both training loops share (reviewlstm.training.loop): the kept check's rule and the optimizer."""
import math

import torch

from reviewlstm.training import loop


def test_the_kept_check_is_the_best_accuracy_ties_broken_by_nll():
    s = loop.Selection()
    assert s.offer(loop.score({"accuracy": 0.5, "nll": 1.2}), 1, 1.2)
    assert not s.offer(loop.score({"accuracy": 0.5, "nll": 1.3}), 2, 1.3)          # same accuracy, worse NLL
    assert s.offer(loop.score({"accuracy": 0.5, "nll": 1.1}), 3, 1.1)              # same accuracy, better NLL
    assert not s.offer(loop.score({"accuracy": 0.5, "nll": 1.1}), 4, 1.1)          # a tie is not better
    assert s.best == (0.5, -1.1) and s.best_epoch == 3


def test_a_check_is_stale_only_with_neither_a_better_score_nor_a_better_nll():
    s = loop.Selection()
    s.offer((0.6, -1.0), 1, 1.0)
    s.offer((0.5, -0.9), 2, 0.9)   # worse accuracy, better NLL: still getting somewhere
    assert s.stale == 0 and s.best_epoch == 1
    s.offer((0.5, -1.5), 3, 1.5)
    s.offer((0.4, -1.6), 4, 1.6)
    assert s.stale == 2
    s.offer((0.7, -2.0), 5, 2.0)
    assert s.stale == 0 and s.best_epoch == 5


def test_the_top_k_keep_their_weights_best_first_and_only_when_asked():
    asked = []
    s = loop.Selection(keep_top=2)
    for epoch, acc in enumerate((0.3, 0.6, 0.4, 0.5), start=1):
        s.offer((acc, 0.0), epoch, None, lambda acc=acc: asked.append(acc) or {"w": acc})
    assert [w["w"] for _, w in s.top] == [0.6, 0.5] and len(asked) == 4
    assert loop.Selection().offer((0.1, 0.0), 1, None, lambda: asked.append("no")) and "no" not in asked


def test_a_selection_resumes_from_its_state():
    s = loop.Selection()
    s.offer((0.6, -1.0), 1.5, 1.0)
    s.offer((0.5, -1.2), 2.0, 1.2)
    back = loop.Selection.from_state(s.state())
    assert (back.best, back.best_epoch, back.best_nll, back.stale) == (s.best, s.best_epoch, s.best_nll, s.stale)
    assert loop.Selection.from_state({"best": [0.5, -1.0], "best_epoch": 1, "stale": 0}).best_nll == 1.0
    assert loop.Selection().best == (-1.0, -math.inf)


def test_adamw_decays_what_it_is_told_and_skips_frozen_parameters():
    model = torch.nn.Sequential(torch.nn.Embedding(10, 4), torch.nn.Linear(4, 3))
    opt = loop.adamw(model, 1e-3, 0.1, decays=lambda name, p: p.dim() > 1 and not name.startswith("0."))
    decayed, plain = opt.param_groups
    assert decayed["weight_decay"] == 0.1 and [p.shape for p in decayed["params"]] == [(3, 4)]
    assert plain["weight_decay"] == 0.0 and [tuple(p.shape) for p in plain["params"]] == [(10, 4), (3,)]
    model[0].weight.requires_grad_(False)
    assert sum(len(g["params"]) for g in loop.adamw(model, 1e-3, 0.1, fused=True).param_groups) == 2


def test_each_half_of_dev_keeps_the_check_best_on_it_whatever_the_other_half_says():
    """CrossFit: a half's choice reads that half alone, so relabelling the other half moves only the
    other half's choice; the reading a half keeps is the one offered with its best check."""
    import numpy as np
    second = np.array([False, False, True, True])
    truth = np.array([0, 1, 0, 1])
    good_first = np.array([[0.9, 0.1], [0.1, 0.9], [0.9, 0.1], [0.1, 0.9]])   # right everywhere
    good_second = np.array([[0.1, 0.9], [0.9, 0.1], [0.9, 0.1], [0.2, 0.8]])  # right on the second half only
    worse_second = good_first.copy()
    worse_second[2:] = [[0.6, 0.4], [0.4, 0.6]]  # right on both halves, less sure on the second
    cf = loop.CrossFit(second, truth, [1, 2])
    assert not cf.ready
    for epoch, probs in ((1, worse_second), (2, good_second)):
        cf.offer(probs, f"reading {epoch}", epoch)
    assert cf.ready and cf.epochs == [1, 2] and cf.chosen == ["reading 1", "reading 2"]
    flipped = loop.CrossFit(second, np.array([0, 1, 1, 0]), [1, 2])  # the second half relabelled
    for epoch, probs in ((1, worse_second), (2, good_second)):
        flipped.offer(probs, f"reading {epoch}", epoch)
    assert flipped.epochs[0] == 1 and flipped.epochs[1] == 1  # the first half's choice did not move
