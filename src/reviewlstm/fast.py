"""The four-gate LSTM's fast path: a whole sequence in one autograd node with a hand-written backward.

The readable cell (cells/lstm.py) is the reference this must match (tests/test_fast.py). What is
different here, and why it is faster:
- the input half of every gate is already projected for all steps (one matrix product, outside);
- sequences are sorted by length, longest first, so at step t only the first b_t rows are still
  reading: the batch shrinks instead of being masked (as cuDNN's packed sequences do), and padded
  steps cost nothing;
- activations are written into preallocated (T, B, .) buffers, no per-step allocation of state;
  the state history doubles as the outputs;
- backward (the NumPy reference's equations, reviewlstm/reference/lstm.py) keeps only what must
  be sequential inside the loop: two matrix products per step (through W_hh and W_u); the weight
  gradients are each one large product over all steps after the loop.

The same loop, compiled (csrc/four_gate.cpp via kernels.py), fuses each step's element-wise work into
one pass and runs without the interpreter between steps; it is used on CPU when it built, and this
Python loop otherwise. On CUDA, a Triton kernel (triton_lstm.py) runs every direction's whole
sequence in one launch and writes the same histories as this loop. Tests hold all three to the
readable cell.
"""
from __future__ import annotations


import torch


def _forward(proj, batch_sizes, ltm0, stm0, weight_hh, weight_u, bias_u):
    """proj (T, B, 4H), rows sorted by length; batch_sizes[t] = rows still reading at step t.

    LTM[t], STM[t] hold the state before step t (row b of LTM[t + 1] is written only while row b is
    reading): the current state, the history backward needs and, for STM, the outputs, in one buffer.
    """
    T, B, G = proj.shape
    H = G // 4
    LTM = proj.new_empty(T + 1, B, H)
    STM = proj.new_empty(T + 1, B, H)
    NS = proj.new_empty(T, B, H)          # N = tanh(...)
    SIG = proj.new_empty(T, B, 3 * H)     # i, f, V = σ(...)
    US = proj.new_empty(T, B, H)          # U
    FORGET = proj.new_empty(T, B, H)      # ltm ⊙ f
    pre = proj.new_empty(B, G)
    LTM[0], STM[0] = ltm0, stm0
    w_hh_t, w_u_t = weight_hh.t(), weight_u.t()
    for t in range(T):
        b = batch_sizes[t]
        if b < B:  # rows that stopped reading: zero outputs, and zeros that weigh nothing in backward
            STM[t + 1, b:] = 0
            FORGET[t, b:] = 0
        if b == 0:
            continue
        p = torch.addmm(proj[t, :b], STM[t, :b], w_hh_t, out=pre[:b])  # (b, 4H): W [stm, event] + b
        N = torch.tanh(p[:, :H], out=NS[t, :b])
        sig = torch.sigmoid(p[:, H:], out=SIG[t, :b])
        i, f, V = sig[:, :H], sig[:, H:2 * H], sig[:, 2 * H:]
        forget = torch.mul(LTM[t, :b], f, out=FORGET[t, :b])
        torch.addcmul(forget, N, i, out=LTM[t + 1, :b])         # remember = forget + learn
        U = torch.addmm(bias_u, forget, w_u_t, out=US[t, :b]).tanh_()
        torch.mul(U, V, out=STM[t + 1, :b])                     # use
    return LTM, STM, NS, SIG, US, FORGET


def _final(HIST, lengths_sorted):
    """Each row's state after its last word: HIST[length, row]."""
    return HIST[lengths_sorted, torch.arange(HIST.size(1), device=HIST.device)]


def _read(LTM, STM, T: int, full: bool, lengths_sorted):
    """(outputs (T, B, H), final ltm, final stm) from an inference pass's state history."""
    if full:  # nobody stopped early: the final state is the last step
        return STM[1:], LTM[T], STM[T]
    return STM[1:], _final(LTM, lengths_sorted), _final(STM, lengths_sorted)


def _weights(cell):
    """(W_hh, W_u) contiguous, as the compiled loop reads them (BLAS transposes on the fly). Nothing is
    kept between calls: a fused optimizer step rewrites weights without bumping their version
    counter, so a cache keyed on it once served stale weights to a training run's dev checks."""
    return cell.weight_hh.detach().contiguous(), cell.weight_u.detach().contiguous()


class _FourGateLSTM(torch.autograd.Function):
    @staticmethod
    def forward(ctx, proj, ltm0, stm0, weight_hh, weight_u, bias_u, batch_sizes, lengths_sorted):
        LTM, STM, NS, SIG, US, FORGET = _forward(proj, batch_sizes, ltm0, stm0, weight_hh, weight_u, bias_u)
        ctx.batch_sizes = batch_sizes
        ctx.save_for_backward(weight_hh, weight_u, LTM, STM, NS, SIG, US, FORGET, lengths_sorted)
        return STM[1:], _final(LTM, lengths_sorted), _final(STM, lengths_sorted)

    @staticmethod
    def backward(ctx, dout, dltm_T, dstm_T):
        weight_hh, weight_u, LTM, STM, NS, SIG, US, FORGET, lengths_sorted = ctx.saved_tensors
        T, B, H = NS.shape
        G = 4 * H
        dltm = dltm_T.clone() if dltm_T is not None else NS.new_zeros(B, H)
        dstm = dstm_T.clone() if dstm_T is not None else NS.new_zeros(B, H)
        if dout is None:
            dout = NS.new_zeros(T, B, H)
        # Everything that does not depend on the recurrence, for all steps at once: each gate's
        # pre-activation gradient is (an upstream gradient) x (one of these factors).
        I, F_, V = SIG[..., :H], SIG[..., H:2 * H], SIG[..., 2 * H:]
        LEARN_F = torch.stack([I * (1 - NS * NS), NS * I * (1 - I)], dim=2)  # (T, B, 2, H): ∂learn/∂(N_pre, i_pre)
        FORGET_F = LTM[:-1] * F_ * (1 - F_)                                  # ∂forget/∂f_pre
        USE_F = torch.stack([US * V * (1 - V), V * (1 - US * US)], dim=2)   # ∂use/∂(V_pre, U_pre)
        dPRE = NS.new_empty(T, B, G)
        dUPRE = NS.new_empty(T, B, H)
        for t in reversed(range(T)):
            b = ctx.batch_sizes[t]
            if b < B:
                dPRE[t, b:] = 0
                dUPRE[t, b:] = 0
            if b == 0:
                continue
            dstm_b = dstm[:b] + dout[t, :b]
            dltm_b = dltm[:b]
            q = dPRE[t, :b].view(b, 4, H)
            dvu = dstm_b[:, None] * USE_F[t, :b]                          # use = U ⊙ V
            q[:, 3] = dvu[:, 0]
            dU_pre = dUPRE[t, :b]
            dU_pre.copy_(dvu[:, 1])
            dforget = torch.addmm(dltm_b, dU_pre, weight_u)            # remember = forget + learn; U reads forget
            torch.mul(dltm_b[:, None], LEARN_F[t, :b], out=q[:, :2])   # learn = N ⊙ i
            torch.mul(dforget, FORGET_F[t, :b], out=q[:, 2])           # forget = ltm ⊙ f
            torch.mul(dforget, F_[t, :b], out=dltm[:b])                # to the previous ltm
            torch.mm(dPRE[t, :b], weight_hh, out=dstm[:b])             # to the previous stm
        # the weight gradients: one product over all steps each (rows past a sequence's end are zero)
        d_weight_hh = dPRE.reshape(-1, G).t() @ STM[:-1].reshape(-1, H)
        d_weight_u = dUPRE.reshape(-1, H).t() @ FORGET.reshape(-1, H)
        d_bias_u = dUPRE.sum((0, 1))
        return dPRE, dltm, dstm, d_weight_hh, d_weight_u, d_bias_u, None, None


class _CompiledFourGateLSTM(torch.autograd.Function):
    """The compiled loop as one autograd node for all directions of a layer (run side by side).
    Inputs after `meta`: per direction (proj without the gates' bias, ltm0, stm0, weight_hh, weight_u,
    bias_u, bias), the bias added inside the loop."""

    @staticmethod
    def forward(ctx, meta, *flat):
        kernel, batch_sizes, lengths_sorted, weights = meta
        D = len(flat) // 7
        per = [flat[7 * d:7 * d + 7] for d in range(D)]
        results = kernel.forward_dirs([p[0] for p in per], batch_sizes, [p[1].contiguous() for p in per],
                                      [p[2].contiguous() for p in per], [t[0] for t in weights],
                                      [t[1] for t in weights], [p[5] for p in per], [p[6] for p in per], True)
        ctx.kernel, ctx.batch_sizes, ctx.D = kernel, batch_sizes, D
        ctx.save_for_backward(*(t for p, r in zip(per, results) for t in (p[3], p[4], *r)))
        outs = []
        for LTM, STM, *_ in results:
            outs += [STM[1:], _final(LTM, lengths_sorted), _final(STM, lengths_sorted)]
        return tuple(outs)

    @staticmethod
    def backward(ctx, *grads):
        saved = ctx.saved_tensors
        none = saved[0].new_empty(0)  # "no gradient reached this output"
        per_saved = [list(saved[8 * d:8 * d + 8]) for d in range(ctx.D)]
        per_grads = [[none if g is None else g for g in grads[3 * d:3 * d + 3]] for d in range(ctx.D)]
        results = ctx.kernel.backward_dirs(per_grads, ctx.batch_sizes, per_saved)
        # the gates' bias entered every step's pre-activation: its gradient is dproj summed over (T, B)
        return (None, *(g for r in results for g in (*r, r[0].sum((0, 1)))))


def triton_enabled() -> bool:
    """REVIEWLSTM_TRITON=off keeps CUDA on the step loop (as REVIEWLSTM_KERNEL=off does the CPU)."""
    from .settings import switch
    return switch("REVIEWLSTM_TRITON")


def _triton_for(x: torch.Tensor, use: bool | str) -> bool:
    """Whether the Triton kernel runs: on CUDA by default when Triton is installed; "triton" insists
    (and is how tests run it in Triton's interpreter on CPU). CPU calls never import Triton."""
    if use != "triton" and not (use is True and x.is_cuda and triton_enabled()):
        return False
    from . import triton_lstm
    if use == "triton" and not triton_lstm.available(x):
        raise RuntimeError("the Triton kernel needs Triton and a CUDA float32/float64 tensor "
                           "(or TRITON_INTERPRET=1 on CPU)")
    return triton_lstm.available(x)


def _kernel_for(x: torch.Tensor, use: bool | str):
    """The compiled loop when it applies: CPU float32/float64, unless `use` is "python" or "triton"."""
    if use in ("python", "triton") or x.device.type != "cpu" or x.dtype not in (torch.float32, torch.float64):
        if use == "kernel":
            raise RuntimeError("the compiled kernel runs on CPU float32/float64 tensors only")
        return None
    from . import kernels
    module = kernels.load()
    if module is None and use == "kernel":
        raise RuntimeError(f"the compiled kernel is unavailable: {kernels.error() or kernels.status()}")
    return module


def four_gate_lstm_dirs(cells, xs, lengths: torch.Tensor, ltm0s, stm0s, use: bool | str = True):
    """Run each direction's `cell` (an LSTMCell) over its x (B, T, E), all with lengths (B,) (the
    backward direction's input is already reversed within each length); returns [(outputs (B, T, H),
    ltm, stm)] per direction.

    Outputs are zero at padded steps and the final state is each sequence's state after its last
    word, exactly as Recurrent's readable loop. Without autograd (inference) nothing is saved.
    `use`: True runs the compiled loop on CPU when available (the directions side by side) and the
    Triton kernel on CUDA when Triton is installed, else the Python loop (one direction after the
    other); "kernel" or "triton" insist on one, "python" uses neither."""
    x = xs[0]
    B, T, _ = x.shape
    # plain Python on the (few) lengths: at one review per call these bookkeeping steps would
    # otherwise cost more than the sequence itself
    lens = [min(n, T) for n in lengths.tolist()]
    # longest first; a batch that is already in that order (length-bucketed, or unpadded) is not copied
    in_order = all(a >= b for a, b in zip(lens, lens[1:]))
    order = None if in_order else torch.argsort(lengths, descending=True, stable=True)
    sorted_lens = lens if in_order else sorted(lens, reverse=True)
    batch_sizes, b = [], B  # batch_sizes[t] = rows with length > t
    for t in range(T):
        while b and sorted_lens[b - 1] <= t:
            b -= 1
        batch_sizes.append(b)
    full = not sorted_lens or sorted_lens[-1] == T  # nobody stops early
    lengths_sorted = torch.tensor(sorted_lens, dtype=torch.long, device=x.device)
    gpu = _triton_for(x, use)
    kernel = None if gpu else _kernel_for(x, use)
    # time-major before projecting: copying (T, B, E) events is cheaper than (T, B, 4H) projections;
    # the compiled loop adds the gates' bias itself (broadcasting it over (T, B, 4H) is slow)
    events = [(xd if in_order else xd[order]).transpose(0, 1).contiguous() for xd in xs]  # (T, B, E)
    if kernel is not None:
        # fresh tensors the compiled loop owns: it adds each step's W_hh stm into them in place
        projs = [(e.reshape(T * B, -1) @ cell.weight_ih.t()).view(T, B, -1) for cell, e in zip(cells, events)]
    else:
        projs = [cell.project(e) for cell, e in zip(cells, events)]  # (T, B, 4H)
    if not in_order:
        ltm0s, stm0s = [s[order] for s in ltm0s], [s[order] for s in stm0s]
    grad = torch.is_grad_enabled() and any(
        t.requires_grad for cell, p, l0, s0 in zip(cells, projs, ltm0s, stm0s)
        for t in (p, l0, s0, cell.weight_hh, cell.weight_u, cell.bias_u, cell.bias))
    results = []
    if gpu:
        from . import triton_lstm
        results = triton_lstm.run(cells, projs, lengths_sorted, ltm0s, stm0s, grad)
    elif kernel is not None:
        weights = [_weights(cell) for cell in cells]
        if grad:
            flat = [t for cell, p, l0, s0 in zip(cells, projs, ltm0s, stm0s)
                    for t in (p, l0, s0, cell.weight_hh, cell.weight_u, cell.bias_u, cell.bias)]
            outs = _CompiledFourGateLSTM.apply((kernel, batch_sizes, lengths_sorted, weights), *flat)
            results = [outs[3 * d:3 * d + 3] for d in range(len(cells))]
        else:
            hist = kernel.forward_dirs(projs, batch_sizes, [s.contiguous() for s in ltm0s],
                                       [s.contiguous() for s in stm0s], [t[0] for t in weights],
                                       [t[1] for t in weights], [c.bias_u for c in cells], [c.bias for c in cells],
                                       False)
            results = [_read(LTM, STM, T, full, lengths_sorted) for LTM, STM, *_ in hist]
    else:
        for cell, proj, ltm0, stm0 in zip(cells, projs, ltm0s, stm0s):
            if grad:
                results.append(_FourGateLSTM.apply(proj, ltm0, stm0, cell.weight_hh, cell.weight_u, cell.bias_u,
                                                   batch_sizes, lengths_sorted))
            else:
                LTM, STM, *_ = _forward(proj, batch_sizes, ltm0, stm0, cell.weight_hh, cell.weight_u, cell.bias_u)
                results.append(_read(LTM, STM, T, full, lengths_sorted))
    if in_order:
        return [(out.transpose(0, 1), ltm, stm) for out, ltm, stm in results]
    inverse = torch.argsort(order)
    return [(out.transpose(0, 1)[inverse], ltm[inverse], stm[inverse]) for out, ltm, stm in results]
