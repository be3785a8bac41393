"""The four-gate loop in Python: the fallback backend, and the plainest statement of what the
compiled (four_gate.cpp) and Triton (triton_loop.py) loops compute.

Forward, step t, for the b rows still reading (History names, cells/lstm.py's equations):

    pre     = W_hh stm + proj[t] + bias          (all four gates' pre-activations, (b, 4H))
    learn   = N ⊙ i        N = tanh(pre_n), i = σ(pre_i)
    forget  = ltm ⊙ f      f = σ(pre_f)
    remember: ltm' = forget + learn
    use:      stm' = U ⊙ V U = tanh(W_u forget + b_u), V = σ(pre_v)

Backward mirrors it step by step (reference/lstm.py); only the two products through W_hh and W_u
are sequential, everything else is computed for all steps at once before the loop.
"""
from __future__ import annotations

import torch

from reviewlstm.nn.fourgate.history import History, SortedBatch


def forward(batch: SortedBatch, projs, biases, ltm0s, stm0s, weights_hh, weights_u, biases_u,
            save: bool = True) -> list[History]:
    return [_forward(batch, *args) for args in zip(projs, biases, ltm0s, stm0s, weights_hh, weights_u, biases_u)]


def _forward(batch: SortedBatch, proj, bias, ltm0, stm0, weight_hh, weight_u, bias_u) -> History:
    T, B, G = proj.shape
    H = G // 4
    proj = proj + bias  # (T, B, 4H): the event's share of every gate, with the gates' bias
    ltm = proj.new_empty(T + 1, B, H)
    stm = proj.new_empty(T + 1, B, H)
    n = proj.new_empty(T, B, H)
    ifv = proj.new_empty(T, B, 3 * H)
    u = proj.new_empty(T, B, H)
    forget = proj.new_empty(T, B, H)
    pre = proj.new_empty(B, G)
    ltm[0], stm[0] = ltm0, stm0
    w_hh_t, w_u_t = weight_hh.t(), weight_u.t()
    for t in range(T):
        b = batch.sizes[t]
        if b < B:  # rows that stopped reading: zero outputs, and zeros that weigh nothing in backward
            stm[t + 1, b:] = 0
            forget[t, b:] = 0
        if b == 0:
            continue
        p = torch.addmm(proj[t, :b], stm[t, :b], w_hh_t, out=pre[:b])           # (b, 4H)
        N = torch.tanh(p[:, :H], out=n[t, :b])
        gates = torch.sigmoid(p[:, H:], out=ifv[t, :b])
        i, f, V = gates[:, :H], gates[:, H:2 * H], gates[:, 2 * H:]
        kept = torch.mul(ltm[t, :b], f, out=forget[t, :b])                      # forget = ltm ⊙ f
        torch.addcmul(kept, N, i, out=ltm[t + 1, :b])                           # remember = forget + learn
        U = torch.addmm(bias_u, kept, w_u_t, out=u[t, :b]).tanh_()
        torch.mul(U, V, out=stm[t + 1, :b])                                     # use = U ⊙ V
    return History(ltm, stm, n, ifv, u, forget)


def backward(batch: SortedBatch, grads, weights_hh, weights_u, histories: list[History]):
    """Per direction (dpre (T, B, 4H), du_pre (T, B, H), dltm0, dstm0 (B, H)); grads per direction
    (doutputs (T, B, H), dltm, dstm (B, H)), any of them None for "no gradient"."""
    return [_backward(batch, g, w_hh, w_u, h) for g, w_hh, w_u, h in zip(grads, weights_hh, weights_u, histories)]


def _backward(batch: SortedBatch, grads, weight_hh, weight_u, h: History):
    dout, dltm_T, dstm_T = grads
    T, B, H = h.n.shape
    dltm = dltm_T.clone() if dltm_T is not None else h.n.new_zeros(B, H)
    dstm = dstm_T.clone() if dstm_T is not None else h.n.new_zeros(B, H)
    if dout is None:
        dout = h.n.new_zeros(T, B, H)
    # everything that does not depend on the recurrence, for all steps at once: each gate's
    # pre-activation gradient is (an upstream gradient) x (one of these factors)
    i, f, V = h.ifv[..., :H], h.ifv[..., H:2 * H], h.ifv[..., 2 * H:]
    learn_factors = torch.stack([i * (1 - h.n * h.n), h.n * i * (1 - i)], dim=2)  # (T, B, 2, H): ∂learn/∂(N, i)
    forget_factor = h.ltm[:-1] * f * (1 - f)                                       # ∂forget/∂f_pre
    use_factors = torch.stack([h.u * V * (1 - V), V * (1 - h.u * h.u)], dim=2)     # (T, B, 2, H): ∂use/∂(V, U)
    dpre = h.n.new_empty(T, B, 4 * H)
    du_pre = h.n.new_empty(T, B, H)
    for t in reversed(range(T)):
        b = batch.sizes[t]
        if b < B:
            dpre[t, b:] = 0
            du_pre[t, b:] = 0
        if b == 0:
            continue
        dstm_b = dstm[:b] + dout[t, :b]
        dltm_b = dltm[:b]
        q = dpre[t, :b].view(b, 4, H)                                  # n | i | f | v
        dvu = dstm_b[:, None] * use_factors[t, :b]                     # use = U ⊙ V
        q[:, 3] = dvu[:, 0]
        du_pre[t, :b] = dvu[:, 1]
        dforget = torch.addmm(dltm_b, du_pre[t, :b], weight_u)        # remember = forget + learn; U reads forget
        torch.mul(dltm_b[:, None], learn_factors[t, :b], out=q[:, :2])  # learn = N ⊙ i
        torch.mul(dforget, forget_factor[t, :b], out=q[:, 2])          # forget = ltm ⊙ f
        torch.mul(dforget, f[t, :b], out=dltm[:b])                     # to the previous ltm
        torch.mm(dpre[t, :b], weight_hh, out=dstm[:b])                 # to the previous stm
    return dpre, du_pre, dltm, dstm
