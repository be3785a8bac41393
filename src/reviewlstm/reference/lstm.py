"""The four-gate LSTM in NumPy, forward and backpropagation through time, by hand.

The teaching copy and the oracle: no autograd, no tricks, one gate per line. Backward walks the
forward pass in reverse, line by line; the gradient of a variable `x` is `dx`.

Forward, at each step t (m is 1 at a real word and 0 at padding)::

    xh       = [stm, event]
    N        = tanh(W_n xh + b_n)         i = σ(W_i xh + b_i)
    f        = σ(W_f xh + b_f)            V = σ(W_v xh + b_v)
    learn    = N ⊙ i
    forget   = ltm ⊙ f
    remember = forget + learn
    U        = tanh(W_u forget + b_u)
    use      = U ⊙ V
    ltm      = m remember + (1 - m) ltm   padding never changes the state
    stm      = m use + (1 - m) stm
    output_t = m stm

Shapes: events (B, T, E); W_n, W_i, W_f, W_v (H, H+E); W_u (H, H); biases (H,).
"""
from __future__ import annotations

import numpy as np

GATES = ("n", "i", "f", "u", "v")


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def init_params(input_size: int, hidden_size: int, rng: np.random.Generator, forget_bias: float = 1.0):
    """U(-1/sqrt(H), 1/sqrt(H)) weights, b_f = forget_bias: the PyTorch cell's rule, in float64."""
    H, E, k = hidden_size, input_size, 1.0 / np.sqrt(hidden_size)
    p = {}
    for g in GATES:
        p[f"W_{g}"] = rng.uniform(-k, k, (H, H) if g == "u" else (H, H + E))
        p[f"b_{g}"] = rng.uniform(-k, k, H)
    p["b_f"][:] = forget_bias
    return p


def params_from_cell(cell) -> dict[str, np.ndarray]:
    """The PyTorch LSTMCell's weights as this module's float64 dict."""
    out = {}
    for g, (W, b) in cell.gate_parameters().items():
        out[f"W_{g}"] = W.detach().double().cpu().numpy().copy()
        out[f"b_{g}"] = b.detach().double().cpu().numpy().copy()
    return out


def _mask(lengths, B, T):
    if lengths is None:
        return np.ones((B, T))
    return (np.arange(T)[None, :] < np.asarray(lengths)[:, None]).astype(np.float64)  # (B, T)


def lstm_forward(p, events, lengths=None, state=None):
    """Run the sequence. Returns outputs (B, T, H), the final (ltm, stm) and the cache for backward."""
    B, T, E = events.shape
    H = p["b_n"].shape[0]
    mask = _mask(lengths, B, T)
    ltm, stm = (np.zeros((B, H)), np.zeros((B, H))) if state is None else state
    outputs = np.zeros((B, T, H))
    cache = []
    for t in range(T):
        m = mask[:, t, None]  # (B, 1)
        xh = np.concatenate([stm, events[:, t]], axis=1)  # (B, H+E)
        N = np.tanh(xh @ p["W_n"].T + p["b_n"])
        i = sigmoid(xh @ p["W_i"].T + p["b_i"])
        f = sigmoid(xh @ p["W_f"].T + p["b_f"])
        V = sigmoid(xh @ p["W_v"].T + p["b_v"])
        learn = N * i
        forget = ltm * f
        remember = forget + learn
        U = np.tanh(forget @ p["W_u"].T + p["b_u"])
        use = U * V
        cache.append((m, xh, ltm, N, i, f, V, forget, U))
        ltm = m * remember + (1 - m) * ltm
        stm = m * use + (1 - m) * stm
        outputs[:, t] = m * stm
    return outputs, (ltm, stm), cache


def lstm_backward(p, cache, doutputs, dstate=None):
    """Gradients of a loss given dloss/doutputs (B, T, H) and dloss/d(final ltm, final stm).

    Returns a dict with one entry per parameter (same keys as p), plus "events" (B, T, E) and the
    initial state's "ltm0", "stm0" (B, H).
    """
    B, T, H = doutputs.shape
    E = cache[0][1].shape[1] - H
    grads = {k: np.zeros_like(v) for k, v in p.items()}
    dltm, dstm = (np.zeros((B, H)), np.zeros((B, H))) if dstate is None else (dstate[0].copy(), dstate[1].copy())
    devents = np.zeros((B, T, E))
    for t in reversed(range(T)):
        m, xh, ltm_prev, N, i, f, V, forget, U = cache[t]
        # output_t = m stm
        dstm = dstm + m * doutputs[:, t]
        # ltm = m remember + (1 - m) ltm_prev;  stm = m use + (1 - m) stm_prev
        dremember, duse = m * dltm, m * dstm
        dltm_prev, dstm_prev = (1 - m) * dltm, (1 - m) * dstm
        # use = U ⊙ V
        dU, dV = duse * V, duse * U
        # U = tanh(W_u forget + b_u)
        dU_pre = dU * (1 - U ** 2)
        grads["W_u"] += dU_pre.T @ forget
        grads["b_u"] += dU_pre.sum(0)
        # remember = forget + learn  (forget also feeds U)
        dforget = dremember + dU_pre @ p["W_u"]
        dlearn = dremember
        # forget = ltm_prev ⊙ f
        df = dforget * ltm_prev
        dltm_prev += dforget * f
        # learn = N ⊙ i
        dN, di = dlearn * i, dlearn * N
        # the four gates that read xh = [stm_prev, event]
        dN_pre = dN * (1 - N ** 2)
        di_pre = di * i * (1 - i)
        df_pre = df * f * (1 - f)
        dV_pre = dV * V * (1 - V)
        dxh = np.zeros_like(xh)
        for g, dpre in (("n", dN_pre), ("i", di_pre), ("f", df_pre), ("v", dV_pre)):
            grads[f"W_{g}"] += dpre.T @ xh
            grads[f"b_{g}"] += dpre.sum(0)
            dxh += dpre @ p[f"W_{g}"]
        dstm_prev += dxh[:, :H]
        devents[:, t] = dxh[:, H:]
        dltm, dstm = dltm_prev, dstm_prev
    grads["events"], grads["ltm0"], grads["stm0"] = devents, dltm, dstm
    return grads
