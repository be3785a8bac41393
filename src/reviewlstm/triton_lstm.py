"""The four-gate LSTM's loop on CUDA: one Triton kernel launch runs every direction's whole sequence.

cuDNN's fused LSTM only knows the classic cell; the four-gate cell's use gate adds a second matrix
product that depends on the first within the same step (U reads ltm ⊙ f). Launched step by step
from Python, each step is eight kernels (two products, six element-wise ops) and on a GPU the
launches, not the arithmetic, are the cost. Here one launch runs all the steps. Rows are
independent through time, so a program owns a block of BB batch rows of one direction:

    for t:                                    # steps in order, inside the kernel
        phase 1: pre = proj[t] + W_hh · stm       (the four gates' products, for some hidden units)
                 learn = N ⊙ i, forget = ltm ⊙ f, remember = forget + learn  (fused, written out)
        barrier                               # the next product reads every unit's forget
        phase 2: U = tanh(W_u · forget + b_u), stm = U ⊙ V
        barrier                               # the next step reads every unit's stm

Two kernels implement it:
- split (the default where it fits): the row block's hidden units are also split across programs
  (SPLIT_BH each), so even a small batch keeps many multiprocessors busy; the barrier is across those
  programs (an atomic counter in global memory, `_grid_barrier`), which is why every program of the
  launch must be resident at once: at most one per multiprocessor (`_split_units`).
- per row block: one program does all the units of its rows, its barrier is its own threads'. It
  runs where the split launch would not fit (very large batches).

The state goes through global memory (it stays in L2; reads of what other programs wrote bypass L1),
and the buffers written are those of fast.py's Python loop, stacked over directions. Backward has
the same shape (use; forget and learn through W_u; the previous stm through W_hh); the weight
gradients are one batched product after the loop.

Products use tl.dot at IEEE float32 precision (not TF32), and in float64 a broadcast product summed:
both kernels are held to the readable cell at 1e-5 (float32) and 1e-10 (float64) like the other
paths (tests/test_triton.py), on the GPU when there is one. Without one, the same kernels run in
Triton's interpreter (TRITON_INTERPRET=1) on CPU tensors; it runs programs one after another, so
there the split kernels run only with a single unit block (nobody waits on anybody).

A row whose sequence has ended (t >= its length) keeps its ltm, outputs zeros and writes zeros to
everything backward reads, so padded steps weigh nothing, as in fast.py.
"""
from __future__ import annotations

import os

import torch

try:
    import triton
    import triton.language as tl
except ImportError:  # the CPU paths never need it
    triton = None

BB = 16  # batch rows per program (tl.dot needs at least 16)
BH = 64  # hidden units per block of a phase, and the depth of each partial product
NUM_WARPS = 8  # per program
STAGES = 2  # software pipelining of each partial product's loads
# BH, NUM_WARPS and STAGES: the fastest of bench/gpu.py --sweep on an H200 (BENCHMARKS.md)
# the split kernels (a step's units across programs, a barrier per phase: the fast path on a GPU);
# they run when every program of the launch fits on its own multiprocessor, else the kernels above
SPLIT = True
SPLIT_BH = 16  # units per program (2x where a batch would need more programs than multiprocessors)
SPLIT_WARPS = 4  # SPLIT_BH and SPLIT_WARPS: the fastest of bench/gpu.py --sweep-split on an H200

def interpreted() -> bool:
    """Triton's interpreter is on: kernels run on CPU tensors (tests without a GPU)."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def available(x: torch.Tensor) -> bool:
    """The Triton loop can run on x: a CUDA tensor with Triton installed, or the interpreter on CPU."""
    if triton is None or x.dtype not in (torch.float32, torch.float64):
        return False
    return x.is_cuda or (x.device.type == "cpu" and interpreted())


if triton is not None:
    @triton.jit
    def _sigmoid(x):
        return 1.0 / (1.0 + tl.exp(-x))

    @triton.jit
    def _tanh(x):
        # tanh(x) = 2σ(2x) - 1, exact in the limits (exp overflowing to inf gives -1)
        return 2.0 / (1.0 + tl.exp(-2.0 * x)) - 1.0

    @triton.jit
    def _mm(a, b, acc, F64: tl.constexpr):
        """acc + a @ b for (BB, BH) a and (BH, BH) b: tl.dot at IEEE float32 precision (no TF32), or
        in float64 a broadcast product summed (tl.dot has no float64 accumulator here)."""
        if F64:
            return acc + tl.sum(a[:, :, None] * b[None, :, :], axis=1)
        else:
            return tl.dot(a, b, acc, input_precision="ieee")

    # T and B change from batch to batch: not specialized on, so a new shape never recompiles
    @triton.jit(do_not_specialize=["T", "B"])
    def _forward_kernel(proj, lengths, W_hhT, W_uT, b_u, LTM, STM, NS, SIG, US, FORGET, T, B, H,
                        BB: tl.constexpr, BH: tl.constexpr, F64: tl.constexpr,
                        STAGES: tl.constexpr):
        # program (row block, direction); every tensor is stacked over directions: step to ours
        d = tl.program_id(1)
        proj += d * T * B * 4 * H
        W_hhT += d * H * 4 * H
        W_uT += d * H * H
        b_u += d * H
        LTM += d * (T + 1) * B * H
        STM += d * (T + 1) * B * H
        NS += d * T * B * H
        SIG += d * T * B * 3 * H
        US += d * T * B * H
        FORGET += d * T * B * H
        rows = tl.program_id(0) * BB + tl.arange(0, BB)              # (BB,)
        row_ok = rows < B
        length = tl.load(lengths + rows, mask=row_ok, other=0)
        units = tl.arange(0, BH)
        dtype = NS.dtype.element_ty
        for t in range(T):
            active = (t < length)[:, None]                           # (BB, 1): still reading at step t
            now = (t * B + rows)[:, None]                            # (BB, 1): row index into (T, B, .)
            nxt = now + B                                            # into the history's step t + 1
            # phase 1: the four gates' pre-activations, then learn, forget, remember
            for c0 in range(0, H, BH):
                cols = c0 + units
                m = row_ok[:, None] & (cols < H)[None, :]             # (BB, BH)
                p = proj + now * (4 * H) + cols[None, :]
                pre_n = tl.load(p, mask=m, other=0.0)
                pre_i = tl.load(p + H, mask=m, other=0.0)
                pre_f = tl.load(p + 2 * H, mask=m, other=0.0)
                pre_v = tl.load(p + 3 * H, mask=m, other=0.0)
                for k0 in tl.range(0, H, BH, num_stages=STAGES):
                    ks = k0 + units
                    stm = tl.load(STM + now * H + ks[None, :], mask=row_ok[:, None] & (ks < H)[None, :],
                                  other=0.0)                          # (BB, BH) of stm_{t-1}
                    # W_hhᵀ (H, 4H) is read along its rows: coalesced, as W_hh's columns would not be
                    wp = W_hhT + ks[:, None] * (4 * H) + cols[None, :]  # (BH, BH): W_hh[gate units, ks]ᵀ
                    wm = (ks < H)[:, None] & (cols < H)[None, :]
                    pre_n = _mm(stm, tl.load(wp, mask=wm, other=0.0), pre_n, F64)
                    pre_i = _mm(stm, tl.load(wp + H, mask=wm, other=0.0), pre_i, F64)
                    pre_f = _mm(stm, tl.load(wp + 2 * H, mask=wm, other=0.0), pre_f, F64)
                    pre_v = _mm(stm, tl.load(wp + 3 * H, mask=wm, other=0.0), pre_v, F64)
                N = _tanh(pre_n)
                i = _sigmoid(pre_i)
                f = _sigmoid(pre_f)
                V = _sigmoid(pre_v)
                ltm = tl.load(LTM + now * H + cols[None, :], mask=m, other=0.0)
                forget = ltm * f
                remember = forget + N * i
                zero = tl.zeros((BB, BH), dtype=dtype)
                tl.store(NS + now * H + cols[None, :], tl.where(active, N, zero), mask=m)
                sp = SIG + now * (3 * H) + cols[None, :]
                tl.store(sp, tl.where(active, i, zero), mask=m)
                tl.store(sp + H, tl.where(active, f, zero), mask=m)
                tl.store(sp + 2 * H, tl.where(active, V, zero), mask=m)
                tl.store(FORGET + now * H + cols[None, :], tl.where(active, forget, zero), mask=m)
                tl.store(LTM + nxt * H + cols[None, :], tl.where(active, remember, ltm), mask=m)
            tl.debug_barrier()  # phase 2 reads every unit's forget, written by other threads
            # phase 2: use = tanh(W_u · forget + b_u) ⊙ V
            for c0 in range(0, H, BH):
                cols = c0 + units
                m = row_ok[:, None] & (cols < H)[None, :]
                pre_u = tl.zeros((BB, BH), dtype=dtype) + tl.load(b_u + cols, mask=cols < H, other=0.0)[None, :]
                for k0 in tl.range(0, H, BH, num_stages=STAGES):
                    ks = k0 + units
                    forget = tl.load(FORGET + now * H + ks[None, :], mask=row_ok[:, None] & (ks < H)[None, :],
                                     other=0.0)
                    w = tl.load(W_uT + ks[:, None] * H + cols[None, :], mask=(ks < H)[:, None] & (cols < H)[None, :],
                                other=0.0)                            # (BH, BH): W_u[cols, ks]ᵀ
                    pre_u = _mm(forget, w, pre_u, F64)
                U = _tanh(pre_u)
                V = tl.load(SIG + now * (3 * H) + 2 * H + cols[None, :], mask=m, other=0.0)
                zero = tl.zeros((BB, BH), dtype=dtype)
                tl.store(US + now * H + cols[None, :], tl.where(active, U, zero), mask=m)
                tl.store(STM + nxt * H + cols[None, :], tl.where(active, U * V, zero), mask=m)
            tl.debug_barrier()  # the next step reads all of stm

    @triton.jit
    def _grid_barrier(counter, target):
        """Every program sharing `counter` has arrived `target` times in all. The programs must all be
        resident at once (launches are sized to the multiprocessors); the interpreter runs programs one
        after another, so it never takes this path."""
        tl.debug_barrier()  # this program's threads have written what the others will read
        tl.atomic_add(counter, 1, sem="release", scope="gpu")
        while tl.atomic_add(counter, 0, sem="acquire", scope="gpu") < target:
            pass
        tl.debug_barrier()

    # The same forward with a step's hidden units split across programs: program (unit block, row
    # block, direction). A small batch then keeps many multiprocessors busy instead of a few; the
    # price is a barrier across the row block's programs after each phase. Its body mirrors
    # _forward_kernel's with one unit block per program (as _backward_split_kernel mirrors
    # _backward_kernel): a change to the equations goes into both, and test_triton.py runs both.
    @triton.jit(do_not_specialize=["T", "B"])
    def _forward_split_kernel(proj, lengths, W_hhT, W_uT, b_u, LTM, STM, NS, SIG, US, FORGET, counters, T, B, H,
                              BB: tl.constexpr, BH: tl.constexpr, F64: tl.constexpr, STAGES: tl.constexpr):
        d = tl.program_id(2)
        proj += d * T * B * 4 * H
        W_hhT += d * H * 4 * H
        W_uT += d * H * H
        b_u += d * H
        LTM += d * (T + 1) * B * H
        STM += d * (T + 1) * B * H
        NS += d * T * B * H
        SIG += d * T * B * 3 * H
        US += d * T * B * H
        FORGET += d * T * B * H
        counter = counters + d * tl.num_programs(1) + tl.program_id(1)
        parties = tl.num_programs(0)
        rows = tl.program_id(1) * BB + tl.arange(0, BB)
        row_ok = rows < B
        length = tl.load(lengths + rows, mask=row_ok, other=0)
        units = tl.arange(0, BH)
        cols = tl.program_id(0) * BH + units                          # this program's hidden units
        m = row_ok[:, None] & (cols < H)[None, :]
        dtype = NS.dtype.element_ty
        zero = tl.zeros((BB, BH), dtype=dtype)
        b = tl.load(b_u + cols, mask=cols < H, other=0.0)[None, :]
        for t in range(T):
            active = (t < length)[:, None]
            now = (t * B + rows)[:, None]
            nxt = now + B
            p = proj + now * (4 * H) + cols[None, :]
            pre_n = tl.load(p, mask=m, other=0.0)
            pre_i = tl.load(p + H, mask=m, other=0.0)
            pre_f = tl.load(p + 2 * H, mask=m, other=0.0)
            pre_v = tl.load(p + 3 * H, mask=m, other=0.0)
            for k0 in tl.range(0, H, BH, num_stages=STAGES):
                ks = k0 + units
                # .cg: read through L2, where the other programs' writes are, not a stale L1 line
                stm = tl.load(STM + now * H + ks[None, :], mask=row_ok[:, None] & (ks < H)[None, :], other=0.0,
                              cache_modifier=".cg")
                wp = W_hhT + ks[:, None] * (4 * H) + cols[None, :]
                wm = (ks < H)[:, None] & (cols < H)[None, :]
                pre_n = _mm(stm, tl.load(wp, mask=wm, other=0.0), pre_n, F64)
                pre_i = _mm(stm, tl.load(wp + H, mask=wm, other=0.0), pre_i, F64)
                pre_f = _mm(stm, tl.load(wp + 2 * H, mask=wm, other=0.0), pre_f, F64)
                pre_v = _mm(stm, tl.load(wp + 3 * H, mask=wm, other=0.0), pre_v, F64)
            N = _tanh(pre_n)
            i = _sigmoid(pre_i)
            f = _sigmoid(pre_f)
            V = _sigmoid(pre_v)
            ltm = tl.load(LTM + now * H + cols[None, :], mask=m, other=0.0)
            forget = ltm * f
            tl.store(NS + now * H + cols[None, :], tl.where(active, N, zero), mask=m)
            sp = SIG + now * (3 * H) + cols[None, :]
            tl.store(sp, tl.where(active, i, zero), mask=m)
            tl.store(sp + H, tl.where(active, f, zero), mask=m)
            tl.store(sp + 2 * H, tl.where(active, V, zero), mask=m)
            tl.store(FORGET + now * H + cols[None, :], tl.where(active, forget, zero), mask=m)
            tl.store(LTM + nxt * H + cols[None, :], tl.where(active, forget + N * i, ltm), mask=m)
            _grid_barrier(counter, parties * (2 * t + 1))
            pre_u = zero + b
            for k0 in tl.range(0, H, BH, num_stages=STAGES):
                ks = k0 + units
                fg = tl.load(FORGET + now * H + ks[None, :], mask=row_ok[:, None] & (ks < H)[None, :], other=0.0,
                             cache_modifier=".cg")
                w = tl.load(W_uT + ks[:, None] * H + cols[None, :], mask=(ks < H)[:, None] & (cols < H)[None, :],
                            other=0.0)
                pre_u = _mm(fg, w, pre_u, F64)
            U = _tanh(pre_u)
            tl.store(US + now * H + cols[None, :], tl.where(active, U, zero), mask=m)
            tl.store(STM + nxt * H + cols[None, :], tl.where(active, U * V, zero), mask=m)
            _grid_barrier(counter, parties * (2 * t + 2))

    # Backward with the units split the same way. Per step two barriers: after the use phase (the
    # forget phase reads every unit's dU_pre) and after the forget/learn phase (the product to the
    # previous stm reads all of dPRE). Each program then writes only its own units of dstm, which only it
    # reads next step, and the next step's writes go to step t - 1's slices: no third barrier.
    @triton.jit(do_not_specialize=["T", "B"])
    def _backward_split_kernel(dout, lengths, W_hh, W_u, LTM, NS, SIG, US, dPRE, dUPRE, DLTM, DSTM, counters,
                               T, B, H, BB: tl.constexpr, BH: tl.constexpr, F64: tl.constexpr,
                               STAGES: tl.constexpr):
        d = tl.program_id(2)
        dout += d * T * B * H
        W_hh += d * 4 * H * H
        W_u += d * H * H
        LTM += d * (T + 1) * B * H
        NS += d * T * B * H
        SIG += d * T * B * 3 * H
        US += d * T * B * H
        dPRE += d * T * B * 4 * H
        dUPRE += d * T * B * H
        DLTM += d * B * H
        DSTM += d * B * H
        counter = counters + d * tl.num_programs(1) + tl.program_id(1)
        parties = tl.num_programs(0)
        rows = tl.program_id(1) * BB + tl.arange(0, BB)
        row_ok = rows < B
        length = tl.load(lengths + rows, mask=row_ok, other=0)
        units = tl.arange(0, BH)
        cols = tl.program_id(0) * BH + units
        m = row_ok[:, None] & (cols < H)[None, :]
        r = rows[:, None]
        dtype = NS.dtype.element_ty
        zero = tl.zeros((BB, BH), dtype=dtype)
        for step in range(T):
            t = T - 1 - step
            active = (t < length)[:, None]
            now = (t * B + rows)[:, None]
            # use = U ⊙ V, this program's units
            dstm_next = tl.load(DSTM + r * H + cols[None, :], mask=m, other=0.0)   # d stm_t from step t + 1
            dstm = dstm_next + tl.load(dout + now * H + cols[None, :], mask=m, other=0.0)
            U = tl.load(US + now * H + cols[None, :], mask=m, other=0.0)
            V = tl.load(SIG + now * (3 * H) + 2 * H + cols[None, :], mask=m, other=0.0)
            tl.store(dPRE + now * (4 * H) + 3 * H + cols[None, :], tl.where(active, dstm * U * V * (1.0 - V), zero),
                     mask=m)
            tl.store(dUPRE + now * H + cols[None, :], tl.where(active, dstm * V * (1.0 - U * U), zero), mask=m)
            _grid_barrier(counter, parties * (2 * step + 1))
            # dforget = dltm + dU_pre · W_u over every unit's dU_pre; then learn and forget
            dltm = tl.load(DLTM + r * H + cols[None, :], mask=m, other=0.0)
            dforget = dltm
            for k0 in tl.range(0, H, BH, num_stages=STAGES):
                ks = k0 + units
                dU = tl.load(dUPRE + now * H + ks[None, :], mask=row_ok[:, None] & (ks < H)[None, :], other=0.0,
                             cache_modifier=".cg")
                w = tl.load(W_u + ks[:, None] * H + cols[None, :], mask=(ks < H)[:, None] & (cols < H)[None, :],
                            other=0.0)
                dforget = _mm(dU, w, dforget, F64)
            N = tl.load(NS + now * H + cols[None, :], mask=m, other=0.0)
            sp = SIG + now * (3 * H) + cols[None, :]
            i = tl.load(sp, mask=m, other=0.0)
            f = tl.load(sp + H, mask=m, other=0.0)
            ltm = tl.load(LTM + now * H + cols[None, :], mask=m, other=0.0)
            g = dPRE + now * (4 * H) + cols[None, :]
            tl.store(g, tl.where(active, dltm * i * (1.0 - N * N), zero), mask=m)
            tl.store(g + H, tl.where(active, dltm * N * i * (1.0 - i), zero), mask=m)
            tl.store(g + 2 * H, tl.where(active, dforget * ltm * f * (1.0 - f), zero), mask=m)
            tl.store(DLTM + r * H + cols[None, :], tl.where(active, dforget * f, dltm), mask=m)
            _grid_barrier(counter, parties * (2 * step + 2))
            # to the previous stm through all four gates' W_hh, this program's units
            dprev = zero
            for k0 in tl.range(0, 4 * H, BH, num_stages=STAGES):
                ks = k0 + units
                dp = tl.load(dPRE + now * (4 * H) + ks[None, :], mask=row_ok[:, None] & (ks < 4 * H)[None, :],
                             other=0.0, cache_modifier=".cg")
                w = tl.load(W_hh + ks[:, None] * H + cols[None, :], mask=(ks < 4 * H)[:, None] & (cols < H)[None, :],
                            other=0.0)
                dprev = _mm(dp, w, dprev, F64)
            tl.store(DSTM + r * H + cols[None, :], tl.where(active, dprev, dstm_next), mask=m)

    @triton.jit(do_not_specialize=["T", "B"])
    def _backward_kernel(dout, lengths, W_hh, W_u, LTM, NS, SIG, US, dPRE, dUPRE, DLTM, DSTM, T, B, H,
                         BB: tl.constexpr, BH: tl.constexpr, F64: tl.constexpr,
                        STAGES: tl.constexpr):
        d = tl.program_id(1)
        dout += d * T * B * H
        W_hh += d * 4 * H * H
        W_u += d * H * H
        LTM += d * (T + 1) * B * H
        NS += d * T * B * H
        SIG += d * T * B * 3 * H
        US += d * T * B * H
        dPRE += d * T * B * 4 * H
        dUPRE += d * T * B * H
        DLTM += d * B * H
        DSTM += d * B * H
        rows = tl.program_id(0) * BB + tl.arange(0, BB)
        row_ok = rows < B
        length = tl.load(lengths + rows, mask=row_ok, other=0)
        units = tl.arange(0, BH)
        dtype = NS.dtype.element_ty
        for step in range(T):
            t = T - 1 - step
            active = (t < length)[:, None]
            now = (t * B + rows)[:, None]
            r = rows[:, None]
            # phase 1: use = U ⊙ V, U = tanh(U_pre), V = σ(V_pre)
            for c0 in range(0, H, BH):
                cols = c0 + units
                m = row_ok[:, None] & (cols < H)[None, :]
                dstm = tl.load(DSTM + r * H + cols[None, :], mask=m, other=0.0)
                dstm += tl.load(dout + now * H + cols[None, :], mask=m, other=0.0)
                U = tl.load(US + now * H + cols[None, :], mask=m, other=0.0)
                V = tl.load(SIG + now * (3 * H) + 2 * H + cols[None, :], mask=m, other=0.0)
                zero = tl.zeros((BB, BH), dtype=dtype)
                dV_pre = dstm * U * V * (1.0 - V)
                dU_pre = dstm * V * (1.0 - U * U)
                tl.store(dPRE + now * (4 * H) + 3 * H + cols[None, :], tl.where(active, dV_pre, zero), mask=m)
                tl.store(dUPRE + now * H + cols[None, :], tl.where(active, dU_pre, zero), mask=m)
            tl.debug_barrier()
            # phase 2: dforget = dltm + dU_pre · W_u (remember = forget + learn; U reads forget)
            for c0 in range(0, H, BH):
                cols = c0 + units
                m = row_ok[:, None] & (cols < H)[None, :]
                dltm = tl.load(DLTM + r * H + cols[None, :], mask=m, other=0.0)
                dforget = dltm
                for k0 in tl.range(0, H, BH, num_stages=STAGES):
                    ks = k0 + units
                    dU = tl.load(dUPRE + now * H + ks[None, :], mask=row_ok[:, None] & (ks < H)[None, :], other=0.0)
                    w = tl.load(W_u + ks[:, None] * H + cols[None, :], mask=(ks < H)[:, None] & (cols < H)[None, :],
                                other=0.0)                            # (BH, BH): W_u[ks, cols]
                    dforget = _mm(dU, w, dforget, F64)
                N = tl.load(NS + now * H + cols[None, :], mask=m, other=0.0)
                sp = SIG + now * (3 * H) + cols[None, :]
                i = tl.load(sp, mask=m, other=0.0)
                f = tl.load(sp + H, mask=m, other=0.0)
                ltm = tl.load(LTM + now * H + cols[None, :], mask=m, other=0.0)
                zero = tl.zeros((BB, BH), dtype=dtype)
                g = dPRE + now * (4 * H) + cols[None, :]
                tl.store(g, tl.where(active, dltm * i * (1.0 - N * N), zero), mask=m)            # learn = N ⊙ i
                tl.store(g + H, tl.where(active, dltm * N * i * (1.0 - i), zero), mask=m)
                tl.store(g + 2 * H, tl.where(active, dforget * ltm * f * (1.0 - f), zero), mask=m)  # forget = ltm ⊙ f
                tl.store(DLTM + r * H + cols[None, :], tl.where(active, dforget * f, dltm), mask=m)
            tl.debug_barrier()
            # phase 3: to the previous stm, through all four gates' W_hh
            for c0 in range(0, H, BH):
                cols = c0 + units
                m = row_ok[:, None] & (cols < H)[None, :]
                dprev = tl.zeros((BB, BH), dtype=dtype)
                for k0 in tl.range(0, 4 * H, BH, num_stages=STAGES):
                    ks = k0 + units
                    dp = tl.load(dPRE + now * (4 * H) + ks[None, :], mask=row_ok[:, None] & (ks < 4 * H)[None, :],
                                 other=0.0)
                    w = tl.load(W_hh + ks[:, None] * H + cols[None, :],
                                mask=(ks < 4 * H)[:, None] & (cols < H)[None, :], other=0.0)  # W_hh[ks, cols]
                    dprev = _mm(dp, w, dprev, F64)
                dstm = tl.load(DSTM + r * H + cols[None, :], mask=m, other=0.0)
                tl.store(DSTM + r * H + cols[None, :], tl.where(active, dprev, dstm), mask=m)
            tl.debug_barrier()


def forward(projs, lengths_sorted, ltm0s, stm0s, weights_hh, weights_u, biases_u):
    """All directions of a layer in one launch, one program per (row block, direction).

    Per direction: proj (T, B, 4H) with the gates' bias, ltm0, stm0 (B, H), W_hh (4H, H), W_u (H, H),
    b_u (H,). Rows may come in any order (each stops at its own length). Returns the histories
    (LTM, STM (D, T + 1, B, H), NS, US, FORGET (D, T, B, H), SIG (D, T, B, 3H)) of fast._forward,
    stacked over directions."""
    proj = torch.stack(projs)                                         # (D, T, B, 4H)
    D, T, B, G = proj.shape
    H = G // 4
    LTM = proj.new_empty(D, T + 1, B, H)
    STM = proj.new_empty(D, T + 1, B, H)
    NS, US, FORGET = (proj.new_empty(D, T, B, H) for _ in range(3))
    SIG = proj.new_empty(D, T, B, 3 * H)
    LTM[:, 0], STM[:, 0] = torch.stack(ltm0s), torch.stack(stm0s)
    if B:
        W_hhT = torch.stack([w.detach().t() for w in weights_hh])    # (D, H, 4H)
        W_uT = torch.stack([w.detach().t() for w in weights_u])      # (D, H, H)
        b_u = torch.stack([b.detach() for b in biases_u])             # (D, H)
        units, row_blocks = _split_units(proj, B, H, D), triton.cdiv(B, BB)
        if units:
            counters = torch.zeros(D * row_blocks, dtype=torch.int32, device=proj.device)
            _forward_split_kernel[(triton.cdiv(H, units), row_blocks, D)](
                proj, lengths_sorted.contiguous(), W_hhT, W_uT, b_u, LTM, STM, NS, SIG, US, FORGET, counters,
                T, B, H, BB=BB, BH=units, F64=proj.dtype == torch.float64, STAGES=STAGES,
                num_warps=SPLIT_WARPS)
        else:
            _forward_kernel[(row_blocks, D)](
                proj, lengths_sorted.contiguous(), W_hhT, W_uT, b_u, LTM, STM, NS, SIG, US, FORGET, T, B, H,
                BB=BB, BH=BH, F64=proj.dtype == torch.float64, STAGES=STAGES, num_warps=NUM_WARPS)
    return LTM, STM, NS, SIG, US, FORGET


def _split_units(x, B: int, H: int, D: int) -> int | None:
    """Units a program for the split kernels, or None for the row-block ones. On CUDA every program of
    the launch must be resident at once (their barriers wait on each other), so at most one per
    multiprocessor: SPLIT_BH units, or twice as many where the batch needs fewer programs (16 and 32
    are the sizes run on a GPU by tests and bench/gpu.py)."""
    if not SPLIT:
        return None
    if x.is_cuda:
        sms = torch.cuda.get_device_properties(x.device).multi_processor_count
        for units in (SPLIT_BH, 2 * SPLIT_BH):
            if triton.cdiv(H, units) * triton.cdiv(B, BB) * D <= sms:
                return units
        return None
    # the interpreter runs programs one after another: only with one unit block, where nobody waits
    # on anybody, so tests without a GPU still cover everything in these kernels but the waiting
    return SPLIT_BH if interpreted() and H <= SPLIT_BH else None


def backward(douts, dltm_Ts, dstm_Ts, lengths_sorted, weights_hh, weights_u, LTM, NS, SIG, US):
    """fast._FourGateLSTM.backward's loop for all directions in one launch: (dPRE (D, T, B, 4H),
    dUPRE (D, T, B, H), dltm0, dstm0 (D, B, H)). A gradient that is None is zeros."""
    D, T, B, H = NS.shape

    def stacked(grads, shape):
        return torch.stack([g if g is not None else NS.new_zeros(shape) for g in grads])

    dout = stacked(douts, (T, B, H))
    DLTM, DSTM = stacked(dltm_Ts, (B, H)), stacked(dstm_Ts, (B, H))  # updated in place, step by step
    dPRE = NS.new_empty(D, T, B, 4 * H)
    dUPRE = NS.new_empty(D, T, B, H)
    if B:
        W_hh = torch.stack([w.detach() for w in weights_hh])
        W_u = torch.stack([w.detach() for w in weights_u])
        units = _split_units(NS, B, H, D)
        if units:
            counters = torch.zeros(D * triton.cdiv(B, BB), dtype=torch.int32, device=NS.device)
            _backward_split_kernel[(triton.cdiv(H, units), triton.cdiv(B, BB), D)](
                dout, lengths_sorted.contiguous(), W_hh, W_u, LTM, NS, SIG, US, dPRE, dUPRE, DLTM, DSTM, counters,
                T, B, H, BB=BB, BH=units, F64=NS.dtype == torch.float64, STAGES=STAGES, num_warps=SPLIT_WARPS)
        else:
            _backward_kernel[(triton.cdiv(B, BB), D)](
                dout, lengths_sorted.contiguous(), W_hh, W_u, LTM, NS, SIG, US, dPRE, dUPRE, DLTM, DSTM, T, B, H,
                BB=BB, BH=BH, F64=NS.dtype == torch.float64, STAGES=STAGES, num_warps=NUM_WARPS)
    return dPRE, dUPRE, DLTM, DSTM


class FourGateLSTM(torch.autograd.Function):
    """All directions of a layer as one autograd node. Inputs after `meta` (lengths_sorted): per
    direction (proj, ltm0, stm0, weight_hh, weight_u, bias_u). Outputs per direction: the outputs
    (T, B, H) and the final ltm, stm (B, H) of each row, read at its own length."""

    @staticmethod
    def forward(ctx, lengths_sorted, *flat):
        per = [flat[6 * d:6 * d + 6] for d in range(len(flat) // 6)]
        LTM, STM, NS, SIG, US, FORGET = forward(*_columns(per, lengths_sorted))
        ctx.save_for_backward(lengths_sorted, *(p[3] for p in per), *(p[4] for p in per),
                              LTM, STM, NS, SIG, US, FORGET)
        return tuple(_outputs(LTM, STM, lengths_sorted))

    @staticmethod
    def backward(ctx, *grads):
        lengths_sorted, *saved = ctx.saved_tensors
        D = len(grads) // 3
        weights_hh, weights_u = saved[:D], saved[D:2 * D]
        LTM, STM, NS, SIG, US, FORGET = saved[2 * D:]
        dPRE, dUPRE, dltm0, dstm0 = backward(grads[0::3], grads[1::3], grads[2::3], lengths_sorted,
                                             weights_hh, weights_u, LTM, NS, SIG, US)
        # the weight gradients: one batched product over all steps (rows past a sequence's end are zero)
        _, T, B, H = NS.shape
        d_weights_hh = dPRE.reshape(D, T * B, 4 * H).transpose(1, 2) @ STM[:, :-1].reshape(D, T * B, H)
        d_weights_u = dUPRE.reshape(D, T * B, H).transpose(1, 2) @ FORGET.reshape(D, T * B, H)
        d_biases_u = dUPRE.sum((1, 2))
        return (None, *(g for d in range(D) for g in (dPRE[d], dltm0[d], dstm0[d], d_weights_hh[d],
                                                       d_weights_u[d], d_biases_u[d])))


def _columns(per, lengths_sorted):
    """forward()'s arguments from the per-direction input tuples."""
    projs, ltm0s, stm0s, whh, wu, bu = zip(*per)
    return list(projs), lengths_sorted, list(ltm0s), list(stm0s), list(whh), list(wu), list(bu)


def _outputs(LTM, STM, lengths_sorted):
    rows = torch.arange(LTM.size(2), device=LTM.device)
    for d in range(LTM.size(0)):
        yield STM[d, 1:]
        yield LTM[d, lengths_sorted, rows]
        yield STM[d, lengths_sorted, rows]


def run(cells, projs, lengths_sorted, ltm0s, stm0s, grad: bool):
    """[(outputs (T, B, H), ltm, stm)] per direction, through the autograd node when `grad`."""
    if grad:
        flat = [t for cell, p, l0, s0 in zip(cells, projs, ltm0s, stm0s)
                for t in (p, l0, s0, cell.weight_hh, cell.weight_u, cell.bias_u)]
        outs = FourGateLSTM.apply(lengths_sorted, *flat)
    else:
        LTM, STM, *_ = forward(projs, lengths_sorted, ltm0s, stm0s, [c.weight_hh for c in cells],
                               [c.weight_u for c in cells], [c.bias_u for c in cells])
        outs = list(_outputs(LTM, STM, lengths_sorted))
    return [tuple(outs[3 * d:3 * d + 3]) for d in range(len(cells))]
