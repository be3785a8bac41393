"""The four-gate LSTM's fast path: a whole sequence in one autograd node with a hand-written backward.

The readable cell (cells/lstm.py) is the reference this must match (tests/test_fast.py). What is
different here, and why it is faster:
- the input half of every gate is already projected for all steps (one matrix product, outside);
- sequences are sorted by length, longest first, so at step t only the first b_t rows are still
  reading: the batch shrinks instead of being masked (as cuDNN's packed sequences do), and padded
  steps cost nothing;
- activations are written into preallocated (T, B, .) buffers, no per-step allocation of state;
- backward (the NumPy reference's equations, reviewlstm/reference/lstm.py) keeps only what must
  be sequential inside the loop: two matrix products per step (through W_hh and W_u); the weight
  gradients are each one large product over all steps after the loop.
"""
from __future__ import annotations

import torch


def _forward(proj, batch_sizes, ltm0, stm0, weight_hh, weight_u, bias_u, save: bool):
    """proj (T, B, 4H), rows sorted by length; batch_sizes[t] = rows still reading at step t."""
    T, B, G = proj.shape
    H = G // 4
    ltm, stm = ltm0.clone(), stm0.clone()  # (B, H), updated in place row block by row block
    out = proj.new_zeros(T, B, H)
    saved = None
    if save:
        saved = {"act": proj.new_zeros(T, B, G), "U": proj.new_zeros(T, B, H), "forget": proj.new_zeros(T, B, H),
                 "ltm_prev": proj.new_zeros(T, B, H), "stm_prev": proj.new_zeros(T, B, H)}
    w_hh_t, w_u_t = weight_hh.t(), weight_u.t()
    for t in range(T):
        b = batch_sizes[t]
        if b == 0:
            break
        ltm_b, stm_b = ltm[:b], stm[:b]
        pre = torch.addmm(proj[t, :b], stm_b, w_hh_t)  # (b, 4H): W [stm, event] + b for n, i, f, v
        act = torch.empty_like(pre)
        torch.tanh(pre[:, :H], out=act[:, :H])          # N
        torch.sigmoid(pre[:, H:], out=act[:, H:])       # i, f, V
        N, i, f, V = act[:, :H], act[:, H:2 * H], act[:, 2 * H:3 * H], act[:, 3 * H:]
        forget = ltm_b * f
        remember = torch.addcmul(forget, N, i)          # forget + learn
        U = torch.tanh(torch.addmm(bias_u, forget, w_u_t))
        use = U * V
        if save:
            saved["act"][t, :b] = act
            saved["U"][t, :b] = U
            saved["forget"][t, :b] = forget
            saved["ltm_prev"][t, :b] = ltm_b
            saved["stm_prev"][t, :b] = stm_b
        ltm[:b] = remember
        stm[:b] = use
        out[t, :b] = use
    return out, ltm, stm, saved


class _FourGateLSTM(torch.autograd.Function):
    @staticmethod
    def forward(ctx, proj, ltm0, stm0, weight_hh, weight_u, bias_u, batch_sizes):
        out, ltm, stm, saved = _forward(proj, batch_sizes, ltm0, stm0, weight_hh, weight_u, bias_u, save=True)
        ctx.batch_sizes = batch_sizes
        ctx.save_for_backward(weight_hh, weight_u, saved["act"], saved["U"], saved["forget"], saved["ltm_prev"],
                              saved["stm_prev"])
        return out, ltm, stm

    @staticmethod
    def backward(ctx, dout, dltm_T, dstm_T):
        weight_hh, weight_u, ACT, US, FORGET, LTM_PREV, STM_PREV = ctx.saved_tensors
        T, B, G = ACT.shape
        H = G // 4
        dltm = dltm_T.clone() if dltm_T is not None else ACT.new_zeros(B, H)
        dstm = dstm_T.clone() if dstm_T is not None else ACT.new_zeros(B, H)
        dPRE = ACT.new_zeros(T, B, G)
        dUPRE = ACT.new_zeros(T, B, H)
        for t in reversed(range(T)):
            b = ctx.batch_sizes[t]
            if b == 0:
                continue
            act = ACT[t, :b]
            N, i, f, V = act[:, :H], act[:, H:2 * H], act[:, 2 * H:3 * H], act[:, 3 * H:]
            U = US[t, :b]
            dstm_b = dstm[:b] + dout[t, :b] if dout is not None else dstm[:b]
            dltm_b = dltm[:b]
            # use = U ⊙ V
            dU_pre = dstm_b * V * (1 - U * U)                         # through U = tanh(W_u forget + b_u)
            dV = dstm_b * U
            dUPRE[t, :b] = dU_pre
            # remember = forget + learn; U also reads forget
            dforget = torch.addmm(dltm_b, dU_pre, weight_u)
            dpre = dPRE[t, :b]
            dpre[:, :H] = dltm_b * i * (1 - N * N)                     # learn = N ⊙ i, N = tanh
            dpre[:, H:2 * H] = dltm_b * N * i * (1 - i)                # i = σ
            dpre[:, 2 * H:3 * H] = dforget * LTM_PREV[t, :b] * f * (1 - f)  # forget = ltm ⊙ f, f = σ
            dpre[:, 3 * H:] = dV * V * (1 - V)                         # V = σ
            dltm[:b] = dforget * f
            dstm[:b] = dpre @ weight_hh                                # to the previous stm
        # the weight gradients: one product over all steps each (rows past a sequence's end are zero)
        d_weight_hh = dPRE.reshape(-1, G).t() @ STM_PREV.reshape(-1, H)
        d_weight_u = dUPRE.reshape(-1, H).t() @ FORGET.reshape(-1, H)
        d_bias_u = dUPRE.sum((0, 1))
        return dPRE, dltm, dstm, d_weight_hh, d_weight_u, d_bias_u, None


def four_gate_lstm(cell, x: torch.Tensor, lengths: torch.Tensor, ltm0: torch.Tensor, stm0: torch.Tensor):
    """Run `cell` (an LSTMCell) over x (B, T, E) with lengths (B,); returns (outputs (B, T, H), ltm, stm).

    Outputs are zero at padded steps and the final state is each sequence's state after its last
    word, exactly as Recurrent's readable loop. Without autograd (inference) nothing is saved.
    """
    B, T, _ = x.shape
    order = torch.argsort(lengths, descending=True, stable=True)  # longest first
    sorted_lengths = lengths[order]
    counts = torch.bincount(sorted_lengths.clamp(max=T), minlength=T + 1)  # how many sequences end at each length
    batch_sizes = (B - torch.cumsum(counts, 0))[:T].tolist()  # rows with length > t
    proj = cell.project(x[order]).transpose(0, 1).contiguous()  # (T, B, 4H)
    ltm0, stm0 = ltm0[order], stm0[order]
    grad = torch.is_grad_enabled() and any(t.requires_grad for t in (proj, ltm0, stm0, cell.weight_hh, cell.weight_u))
    if grad:
        out, ltm, stm = _FourGateLSTM.apply(proj, ltm0, stm0, cell.weight_hh, cell.weight_u, cell.bias_u, batch_sizes)
    else:
        out, ltm, stm, _ = _forward(proj, batch_sizes, ltm0, stm0, cell.weight_hh, cell.weight_u, cell.bias_u, save=False)
    inverse = torch.argsort(order)
    return out.transpose(0, 1)[inverse], ltm[inverse], stm[inverse]
