"""The pieces both training loops share (reviewlstm.loop): the kept check's rule and the optimizer."""
import math

import torch

from reviewlstm import loop


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
