"""The four-gate LSTM's loop on CUDA: one Triton kernel runs a direction's whole sequence.

cuDNN's fused LSTM only knows the classic cell; the four-gate cell's use gate adds a second matrix
product that depends on the first within the same step (U reads ltm ⊙ f). Launched step by step
from Python, each step is eight kernels (two products, six element-wise ops) and on a GPU the
launches, not the arithmetic, are the cost. Here each program of the kernel owns a block of BB
batch rows (rows are independent of each other through time) and runs every step of them itself:

    for t:                                    # every row block in parallel, steps in order
        phase 1, per block of BH hidden units: pre = proj[t] + W_hh · stm   (all four gates' products)
                 learn = N ⊙ i, forget = ltm ⊙ f, remember = forget + learn  (fused, written out)
        barrier                               # forget of every unit is needed by every unit
        phase 2, per block of BH hidden units: U = tanh(W_u · forget + b_u), stm = U ⊙ V
        barrier                               # the next step reads all of stm

The state goes through global memory (it stays in L1/L2: a block's rows are a few KiB), and
the buffers written are exactly those of fast.py's Python loop, so the backward pass, the weight
gradients and the reading of final states are shared. Backward is the same shape with three
phases per step (use, then forget and learn through W_u, then the previous stm through W_hh).

Matrix products use tl.dot at IEEE float32 precision (not TF32): this path is held to the readable
cell at 1e-5 like the others (tests/test_triton.py). Without a GPU, those tests run the same kernels
in Triton's interpreter (TRITON_INTERPRET=1) on CPU tensors.

A row whose sequence has ended (t >= its length) keeps its ltm, reads zeros as output and writes
zeros to everything backward reads, so padded steps weigh nothing, as in fast.py.
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
BH = 32  # hidden units per block of a phase, and the depth of each partial product
NUM_WARPS = 4  # per program; BH and NUM_WARPS were chosen by bench/gpu.py's sweep


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
    def _forward_kernel(proj, lengths, W_hh, W_u, b_u, LTM, STM, NS, SIG, US, FORGET, T, B, H,
                        BB: tl.constexpr, BH: tl.constexpr):
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
                for k0 in range(0, H, BH):
                    ks = k0 + units
                    stm = tl.load(STM + now * H + ks[None, :], mask=row_ok[:, None] & (ks < H)[None, :],
                                  other=0.0)                          # (BB, BH) of stm_{t-1}
                    w = W_hh + cols[None, :] * H + ks[:, None]        # (BH, BH): W_hh[gate rows, ks]ᵀ
                    wm = (ks < H)[:, None] & (cols < H)[None, :]
                    pre_n = tl.dot(stm, tl.load(w, mask=wm, other=0.0), pre_n, input_precision="ieee")
                    pre_i = tl.dot(stm, tl.load(w + H * H, mask=wm, other=0.0), pre_i, input_precision="ieee")
                    pre_f = tl.dot(stm, tl.load(w + 2 * H * H, mask=wm, other=0.0), pre_f,
                                   input_precision="ieee")
                    pre_v = tl.dot(stm, tl.load(w + 3 * H * H, mask=wm, other=0.0), pre_v,
                                   input_precision="ieee")
                N = _tanh(pre_n)
                i = _sigmoid(pre_i)
                f = _sigmoid(pre_f)
                V = _sigmoid(pre_v)
                ltm = tl.load(LTM + now * H + cols[None, :], mask=m, other=0.0)
                forget = ltm * f
                remember = forget + N * i
                zero = tl.zeros((BB, BH), dtype=dtype)
                tl.store(NS + now * H + cols[None, :], tl.where(active, N, zero), mask=m)
                s = SIG + now * (3 * H) + cols[None, :]
                tl.store(s, tl.where(active, i, zero), mask=m)
                tl.store(s + H, tl.where(active, f, zero), mask=m)
                tl.store(s + 2 * H, tl.where(active, V, zero), mask=m)
                tl.store(FORGET + now * H + cols[None, :], tl.where(active, forget, zero), mask=m)
                tl.store(LTM + nxt * H + cols[None, :], tl.where(active, remember, ltm), mask=m)
            tl.debug_barrier()  # phase 2 reads every unit's forget, written by other threads
            # phase 2: use = tanh(W_u · forget + b_u) ⊙ V
            for c0 in range(0, H, BH):
                cols = c0 + units
                m = row_ok[:, None] & (cols < H)[None, :]
                pre_u = tl.zeros((BB, BH), dtype=dtype) + tl.load(b_u + cols, mask=cols < H, other=0.0)[None, :]
                for k0 in range(0, H, BH):
                    ks = k0 + units
                    forget = tl.load(FORGET + now * H + ks[None, :], mask=row_ok[:, None] & (ks < H)[None, :],
                                     other=0.0)
                    w = tl.load(W_u + cols[None, :] * H + ks[:, None], mask=(ks < H)[:, None] & (cols < H)[None, :],
                                other=0.0)                            # (BH, BH): W_u[cols, ks]ᵀ
                    pre_u = tl.dot(forget, w, pre_u, input_precision="ieee")
                U = _tanh(pre_u)
                V = tl.load(SIG + now * (3 * H) + 2 * H + cols[None, :], mask=m, other=0.0)
                zero = tl.zeros((BB, BH), dtype=dtype)
                tl.store(US + now * H + cols[None, :], tl.where(active, U, zero), mask=m)
                tl.store(STM + nxt * H + cols[None, :], tl.where(active, U * V, zero), mask=m)
            tl.debug_barrier()  # the next step reads all of stm

    @triton.jit
    def _backward_kernel(dout, lengths, W_hh, W_u, LTM, NS, SIG, US, dPRE, dUPRE, DLTM, DSTM, T, B, H,
                         HAS_DOUT: tl.constexpr, BB: tl.constexpr, BH: tl.constexpr):
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
                if HAS_DOUT:
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
                for k0 in range(0, H, BH):
                    ks = k0 + units
                    dU = tl.load(dUPRE + now * H + ks[None, :], mask=row_ok[:, None] & (ks < H)[None, :], other=0.0)
                    w = tl.load(W_u + ks[:, None] * H + cols[None, :], mask=(ks < H)[:, None] & (cols < H)[None, :],
                                other=0.0)                            # (BH, BH): W_u[ks, cols]
                    dforget = tl.dot(dU, w, dforget, input_precision="ieee")
                N = tl.load(NS + now * H + cols[None, :], mask=m, other=0.0)
                s = SIG + now * (3 * H) + cols[None, :]
                i = tl.load(s, mask=m, other=0.0)
                f = tl.load(s + H, mask=m, other=0.0)
                ltm = tl.load(LTM + now * H + cols[None, :], mask=m, other=0.0)
                zero = tl.zeros((BB, BH), dtype=dtype)
                d = dPRE + now * (4 * H) + cols[None, :]
                tl.store(d, tl.where(active, dltm * i * (1.0 - N * N), zero), mask=m)            # learn = N ⊙ i
                tl.store(d + H, tl.where(active, dltm * N * i * (1.0 - i), zero), mask=m)
                tl.store(d + 2 * H, tl.where(active, dforget * ltm * f * (1.0 - f), zero), mask=m)  # forget = ltm ⊙ f
                tl.store(DLTM + r * H + cols[None, :], tl.where(active, dforget * f, dltm), mask=m)
            tl.debug_barrier()
            # phase 3: to the previous stm, through all four gates' W_hh
            for c0 in range(0, H, BH):
                cols = c0 + units
                m = row_ok[:, None] & (cols < H)[None, :]
                dprev = tl.zeros((BB, BH), dtype=dtype)
                for k0 in range(0, 4 * H, BH):
                    ks = k0 + units
                    dp = tl.load(dPRE + now * (4 * H) + ks[None, :], mask=row_ok[:, None] & (ks < 4 * H)[None, :],
                                 other=0.0)
                    w = tl.load(W_hh + ks[:, None] * H + cols[None, :],
                                mask=(ks < 4 * H)[:, None] & (cols < H)[None, :], other=0.0)  # W_hh[ks, cols]
                    dprev = tl.dot(dp, w, dprev, input_precision="ieee")
                dstm = tl.load(DSTM + r * H + cols[None, :], mask=m, other=0.0)
                tl.store(DSTM + r * H + cols[None, :], tl.where(active, dprev, dstm), mask=m)
            tl.debug_barrier()


def _grid(B: int):
    return (triton.cdiv(B, BB),)


def forward(proj, lengths_sorted, ltm0, stm0, weight_hh, weight_u, bias_u):
    """fast._forward's contract on the GPU: proj (T, B, 4H) with the gates' bias, rows in any order
    (each row stops at its own length). Returns the histories (LTM, STM, NS, SIG, US, FORGET)."""
    T, B, G = proj.shape
    H = G // 4
    LTM = proj.new_empty(T + 1, B, H)
    STM = proj.new_empty(T + 1, B, H)
    NS, US, FORGET = (proj.new_empty(T, B, H) for _ in range(3))
    SIG = proj.new_empty(T, B, 3 * H)
    LTM[0], STM[0] = ltm0, stm0
    if B:
        _forward_kernel[_grid(B)](proj.contiguous(), lengths_sorted.contiguous(), weight_hh.detach().contiguous(),
                                  weight_u.detach().contiguous(), bias_u.detach().contiguous(),
                                  LTM, STM, NS, SIG, US, FORGET, T, B, H, BB=BB, BH=BH,
                                  num_warps=NUM_WARPS)
    return LTM, STM, NS, SIG, US, FORGET


def backward(dout, dltm_T, dstm_T, lengths_sorted, weight_hh, weight_u, LTM, NS, SIG, US):
    """The loop of fast._FourGateLSTM.backward: (dPRE (T, B, 4H), dUPRE (T, B, H), dltm0, dstm0)."""
    T, B, H = NS.shape
    DLTM = dltm_T.clone() if dltm_T is not None else NS.new_zeros(B, H)
    DSTM = dstm_T.clone() if dstm_T is not None else NS.new_zeros(B, H)
    dPRE = NS.new_empty(T, B, 4 * H)
    dUPRE = NS.new_empty(T, B, H)
    if B:
        has_dout = dout is not None
        _backward_kernel[_grid(B)](dout.contiguous() if has_dout else NS, lengths_sorted.contiguous(),
                                   weight_hh.detach().contiguous(), weight_u.detach().contiguous(),
                                   LTM, NS, SIG, US, dPRE, dUPRE, DLTM, DSTM, T, B, H,
                                   HAS_DOUT=has_dout, BB=BB, BH=BH, num_warps=NUM_WARPS)
    return dPRE, dUPRE, DLTM, DSTM
