"""The NumPy BPTT against finite differences and against the PyTorch cells (float64 throughout).

float64 because a central difference with eps=1e-6 loses about half the float32 mantissa to
cancellation: in float32 the check could not tell a correct gradient from a slightly wrong one.
"""
import numpy as np
import pytest
import torch

from reviewlstm.nn.layers import Recurrent
from reviewlstm.reference import lstm, rnn

B, T, E, H = 3, 6, 4, 5
LENGTHS = np.array([6, 3, 1])  # a padded batch: the gradient must also be right at padded steps


def rel_error(a, b):
    return np.linalg.norm(a - b) / max(np.linalg.norm(a), np.linalg.norm(b), 1e-300)


def make_problem(kind, seed=0):
    rng = np.random.default_rng(seed)
    events = rng.normal(size=(B, T, E))
    if kind == "lstm":
        p = lstm.init_params(E, H, rng)
        state = (rng.normal(size=(B, H)), rng.normal(size=(B, H)))
    else:
        p = rnn.init_params(E, H, rng)
        state = rng.normal(size=(B, H))
    # a loss that touches every output and the final state: L = sum(R * outputs) + sum(S * final)
    R = rng.normal(size=(B, T, H))
    S = [rng.normal(size=(B, H)) for _ in range(2)]
    return p, events, state, R, S


def loss_and_grads(kind, p, events, state, R, S):
    if kind == "lstm":
        out, (ltm, stm), cache = lstm.lstm_forward(p, events, LENGTHS, state)
        loss = (R * out).sum() + (S[0] * ltm).sum() + (S[1] * stm).sum()
        return loss, lambda: lstm.lstm_backward(p, cache, R, (S[0], S[1]))
    out, stm, cache = rnn.rnn_forward(p, events, LENGTHS, state)
    loss = (R * out).sum() + (S[1] * stm).sum()
    return loss, lambda: rnn.rnn_backward(p, cache, R, S[1])


@pytest.mark.parametrize("kind", ["lstm", "rnn"])
def test_bptt_matches_finite_differences(kind):
    p, events, state, R, S = make_problem(kind)
    _, backward = loss_and_grads(kind, p, events, state, R, S)
    grads = backward()

    # every array the loss depends on: parameters, events, initial state
    arrays = dict(p, events=events)
    if kind == "lstm":
        arrays["ltm0"], arrays["stm0"] = state
    else:
        arrays["stm0"] = state
    eps = 1e-6
    for name, arr in arrays.items():
        numeric = np.zeros_like(arr)
        for idx in np.ndindex(arr.shape):
            old = arr[idx]
            arr[idx] = old + eps
            plus, _ = loss_and_grads(kind, p, events, state, R, S)
            arr[idx] = old - eps
            minus, _ = loss_and_grads(kind, p, events, state, R, S)
            arr[idx] = old
            numeric[idx] = (plus - minus) / (2 * eps)
        err = rel_error(grads[name], numeric)
        assert err < 1e-6, f"{kind} d{name}: relative error {err:.2e}"
        assert np.abs(numeric).max() > 0 or name in ("events",), f"{name} gradient is identically zero"


@pytest.mark.parametrize("kind", ["lstm", "rnn"])
def test_numpy_matches_pytorch_cells_and_autograd(kind):
    torch.manual_seed(1)
    layer = Recurrent(kind, E, H).double()
    cell = layer.cells[0]
    p = (lstm if kind == "lstm" else rnn).params_from_cell(cell)
    _, events, state, R, S = make_problem(kind, seed=2)

    x = torch.tensor(events, requires_grad=True)
    if kind == "lstm":
        init = [torch.tensor(s[None], requires_grad=True) for s in state]  # (1, B, H)
        out, final = layer(x, torch.tensor(LENGTHS), state=tuple(init))
        loss = (torch.tensor(R) * out).sum() + (torch.tensor(S[0]) * final.ltm[0]).sum() \
            + (torch.tensor(S[1]) * final.stm[0]).sum()
        np_out, (np_ltm, np_stm), cache = lstm.lstm_forward(p, events, LENGTHS, state)
        np_grads = lstm.lstm_backward(p, cache, R, (S[0], S[1]))
        assert np.abs(final.ltm[0].detach().numpy() - np_ltm).max() < 1e-8
    else:
        init = [torch.tensor(state[None], requires_grad=True)]
        out, final = layer(x, torch.tensor(LENGTHS), state=tuple(init))
        loss = (torch.tensor(R) * out).sum() + (torch.tensor(S[1]) * final.stm[0]).sum()
        np_out, np_stm, cache = rnn.rnn_forward(p, events, LENGTHS, state)
        np_grads = rnn.rnn_backward(p, cache, R, S[1])
    assert np.abs(out.detach().numpy() - np_out).max() < 1e-8
    assert np.abs(final.stm[0].detach().numpy() - np_stm).max() < 1e-8

    loss.backward()
    assert np.abs(x.grad.numpy() - np_grads["events"]).max() < 1e-8
    assert np.abs(init[-1].grad[0].numpy() - np_grads["stm0"]).max() < 1e-8
    if kind == "lstm":
        assert np.abs(init[0].grad[0].numpy() - np_grads["ltm0"]).max() < 1e-8
        # the fused torch gradients, cut back into the equations' per-gate matrices
        for k, g in enumerate(("n", "i", "f", "v")):  # the row blocks of the fused weights
            rows = slice(k * H, (k + 1) * H)
            W_grad = torch.cat([cell.weight_hh.grad[rows], cell.weight_ih.grad[rows]], 1).numpy()
            assert np.abs(W_grad - np_grads[f"W_{g}"]).max() < 1e-8, g
            assert np.abs(cell.bias.grad[rows].numpy() - np_grads[f"b_{g}"]).max() < 1e-8, g
        assert np.abs(cell.weight_u.grad.numpy() - np_grads["W_u"]).max() < 1e-8
        assert np.abs(cell.bias_u.grad.numpy() - np_grads["b_u"]).max() < 1e-8
    else:
        assert np.abs(cell.weight_hh.grad.numpy() - np_grads["W_m"]).max() < 1e-8
        assert np.abs(cell.weight_ih.grad.numpy() - np_grads["W_e"]).max() < 1e-8
        assert np.abs(cell.bias.grad.numpy() - np_grads["b"]).max() < 1e-8


def test_padded_steps_leave_state_and_have_no_gradient():
    p, events, state, R, S = make_problem("lstm")
    out, final, cache = lstm.lstm_forward(p, events, LENGTHS, state)
    short, short_final, _ = lstm.lstm_forward(p, events[2:3, :1], None, (state[0][2:3], state[1][2:3]))
    assert np.allclose(final[1][2], short_final[1][0]) and np.allclose(out[2, 0], short[0, 0])
    assert np.all(out[2, 1:] == 0)
    grads = lstm.lstm_backward(p, cache, R, (S[0], S[1]))
    assert np.all(grads["events"][2, 1:] == 0) and np.all(grads["events"][1, 3:] == 0)
