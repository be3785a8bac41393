"""The vanilla RNN in NumPy, forward and backpropagation through time, by hand.

Forward, at each step t (m is 1 at a real word and 0 at padding)::

    new      = tanh(W_m stm + W_e event + b)
    stm      = m new + (1 - m) stm     padding never changes the state
    output_t = m stm

Shapes: events (B, T, E); W_m (H, H); W_e (H, E); b (H,).
"""
from __future__ import annotations

import numpy as np

from reviewlstm.reference.lstm import _mask


def init_params(input_size: int, hidden_size: int, rng: np.random.Generator):
    k = 1.0 / np.sqrt(hidden_size)
    return {"W_m": rng.uniform(-k, k, (hidden_size, hidden_size)),
            "W_e": rng.uniform(-k, k, (hidden_size, input_size)),
            "b": rng.uniform(-k, k, hidden_size)}


def params_from_cell(cell) -> dict[str, np.ndarray]:
    """The PyTorch RNNCell's weights as this module's float64 dict."""
    as64 = lambda t: t.detach().double().cpu().numpy().copy()  # noqa: E731
    return {"W_m": as64(cell.weight_hh), "W_e": as64(cell.weight_ih), "b": as64(cell.bias)}


def rnn_forward(p, events, lengths=None, state=None):
    """Returns outputs (B, T, H), the final stm and the cache for backward."""
    B, T, E = events.shape
    H = p["b"].shape[0]
    mask = _mask(lengths, B, T)
    stm = np.zeros((B, H)) if state is None else state
    outputs = np.zeros((B, T, H))
    cache = []
    for t in range(T):
        m = mask[:, t, None]  # (B, 1)
        new = np.tanh(stm @ p["W_m"].T + events[:, t] @ p["W_e"].T + p["b"])
        cache.append((m, stm, events[:, t], new))
        stm = m * new + (1 - m) * stm
        outputs[:, t] = m * stm
    return outputs, stm, cache


def rnn_backward(p, cache, doutputs, dstate=None):
    """Gradients given dloss/doutputs (B, T, H) and dloss/d(final stm): per parameter, "events", "stm0"."""
    B, T, H = doutputs.shape
    E = cache[0][2].shape[1]
    grads = {k: np.zeros_like(v) for k, v in p.items()}
    dstm = np.zeros((B, H)) if dstate is None else dstate.copy()
    devents = np.zeros((B, T, E))
    for t in reversed(range(T)):
        m, stm_prev, event, new = cache[t]
        # output_t = m stm
        dstm = dstm + m * doutputs[:, t]
        # stm = m new + (1 - m) stm_prev
        dnew = m * dstm
        dstm_prev = (1 - m) * dstm
        # new = tanh(W_m stm_prev + W_e event + b)
        dpre = dnew * (1 - new ** 2)
        grads["W_m"] += dpre.T @ stm_prev
        grads["W_e"] += dpre.T @ event
        grads["b"] += dpre.sum(0)
        dstm_prev += dpre @ p["W_m"]
        devents[:, t] = dpre @ p["W_e"]
        dstm = dstm_prev
    grads["events"], grads["stm0"] = devents, dstm
    return grads
