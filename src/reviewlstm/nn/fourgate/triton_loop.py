"""The Triton backend: on CUDA, one kernel launch runs every direction's whole sequence.

cuDNN's fused LSTM only knows the classic cell; the four-gate cell's use gate adds a second matrix
product that depends on the first within the same step (U reads forget = ltm ⊙ f). Launched step by
step from Python, each step is eight kernels (two products, six element-wise ops) and on a GPU the
launches, not the arithmetic, are the cost. Here one launch runs all the steps. Rows are
independent through time, so a program owns a block of rows of one direction:

    for t:                                    # steps in order, inside the kernel
        phase 1: pre = proj[t] + W_hh · stm       (the four gates' products, for some hidden units)
                 learn = N ⊙ i, forget = ltm ⊙ f, remember = forget + learn  (fused, written out)
        barrier                               # the next product reads every unit's forget
        phase 2: U = tanh(W_u · forget + b_u), stm = U ⊙ V
        barrier                               # the next step reads every unit's stm

Each phase is one `@triton.jit` helper over a block of hidden units (`_learn_forget_remember`,
`_use`; backward `_use_back`, `_remember_back`, `_to_previous_stm`), and one forward and one backward
kernel call them in either of two layouts (the `SPLIT` constexpr), so the layouts cannot drift apart:
- split (where it fits): a step's hidden units are split across programs (`units` each), so even a
  small batch keeps many multiprocessors busy; the barrier is across those programs (an atomic
  counter in global memory, `_grid_barrier`), which is why every program of the launch must be
  resident at once: at most one per multiprocessor (`_split_units`). Reads of what other programs
  wrote go through L2 (`.cg`), not a stale L1 line.
- per row block: one program runs every unit block of its rows in turn; its barrier is its own
  threads'. It runs where the split launch would not fit (very large batches).

The buffers written are history.py's History, stacked over directions. Backward has the same shape
(use; forget and learn through W_u; the previous stm through W_hh); the weight gradients are made by
the dispatcher after the loop.

Products use tl.dot at IEEE float32 precision (not TF32), and in float64 a broadcast product summed:
both kernels are held to the readable cell at 1e-5 (float32) and 1e-10 (float64) like the other
backends (tests/nn/test_fourgate.py), on the GPU when there is one. Without one, the same kernels run in
Triton's interpreter (TRITON_INTERPRET=1) on CPU tensors; it runs programs one after another, so
there the split kernels run only with a single unit block (nobody waits on anybody).

A row whose sequence has ended (t >= its length) keeps its ltm, outputs zeros and writes zeros to
everything backward reads, so padded steps weigh nothing, as in python_loop.py.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from reviewlstm.nn.fourgate.history import History, SortedBatch

try:
    import triton
    import triton.language as tl
except ImportError:  # the CPU backends never need it
    triton = None


@dataclass(frozen=True)
class TritonSettings:
    """Launch settings (the fastest of bench/gpu.py --sweep and --sweep-split on an H200)."""
    rows: int = 16          # batch rows per program (tl.dot needs at least 16)
    units: int = 64         # row-block kernels: hidden units per block of a phase, and each product's depth
    warps: int = 8          # row-block kernels: warps per program
    stages: int = 2         # software pipelining of each partial product's loads
    split: bool = True      # use the split kernels where every program of the launch fits at once
    split_units: int = 16   # split kernels: units per program (2x where the batch needs more programs)
    split_warps: int = 4


DEFAULT = TritonSettings()


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

    @triton.jit
    def _product(acc, a, a_width, w, now, row_ok, cols, K, H, BH: tl.constexpr, F64: tl.constexpr,
                 STAGES: tl.constexpr, CACHE: tl.constexpr):
        """acc + a[rows, :K] @ w[:K, cols]: `a` a (., a_width) buffer read at row index `now`, `w` a
        row-major (K, H) matrix; BH columns of `a` at a time, software-pipelined."""
        units = tl.arange(0, BH)
        for k0 in tl.range(0, K, BH, num_stages=STAGES):
            ks = k0 + units
            x = tl.load(a + now * a_width + ks[None, :], mask=row_ok[:, None] & (ks < K)[None, :], other=0.0,
                        cache_modifier=CACHE)                           # (BB, BH)
            wk = tl.load(w + ks[:, None] * H + cols[None, :], mask=(ks < K)[:, None] & (cols < H)[None, :],
                         other=0.0)                                     # (BH, BH)
            acc = _mm(x, wk, acc, F64)
        return acc

    # ---- the phases, for one block of hidden units `cols` of rows `rows` at step t --------------
    # now: (BB, 1) row index into a (T, B, .) buffer at step t; nxt: into a (T + 1, B, .) one at t + 1.
    # CACHE: "" or ".cg" (read through L2: other programs of a split launch wrote it).

    @triton.jit
    def _learn_forget_remember(proj, W_hhT, ltm, stm, n, ifv, forget, now, nxt, row_ok, active, cols, H,
                               BB: tl.constexpr, BH: tl.constexpr, F64: tl.constexpr, STAGES: tl.constexpr,
                               CACHE: tl.constexpr):
        units = tl.arange(0, BH)
        m = row_ok[:, None] & (cols < H)[None, :]                       # (BB, BH)
        p = proj + now * (4 * H) + cols[None, :]
        pre_n = tl.load(p, mask=m, other=0.0)
        pre_i = tl.load(p + H, mask=m, other=0.0)
        pre_f = tl.load(p + 2 * H, mask=m, other=0.0)
        pre_v = tl.load(p + 3 * H, mask=m, other=0.0)
        for k0 in tl.range(0, H, BH, num_stages=STAGES):
            ks = k0 + units
            stm_k = tl.load(stm + now * H + ks[None, :], mask=row_ok[:, None] & (ks < H)[None, :], other=0.0,
                            cache_modifier=CACHE)                       # (BB, BH) of stm_{t-1}
            # W_hhᵀ (H, 4H) is read along its rows: coalesced, as W_hh's columns would not be
            wp = W_hhT + ks[:, None] * (4 * H) + cols[None, :]          # (BH, BH): W_hh[gate units, ks]ᵀ
            wm = (ks < H)[:, None] & (cols < H)[None, :]
            pre_n = _mm(stm_k, tl.load(wp, mask=wm, other=0.0), pre_n, F64)
            pre_i = _mm(stm_k, tl.load(wp + H, mask=wm, other=0.0), pre_i, F64)
            pre_f = _mm(stm_k, tl.load(wp + 2 * H, mask=wm, other=0.0), pre_f, F64)
            pre_v = _mm(stm_k, tl.load(wp + 3 * H, mask=wm, other=0.0), pre_v, F64)
        N = _tanh(pre_n)
        i = _sigmoid(pre_i)
        f = _sigmoid(pre_f)
        V = _sigmoid(pre_v)
        ltm_t = tl.load(ltm + now * H + cols[None, :], mask=m, other=0.0)
        kept = ltm_t * f                                                # forget = ltm ⊙ f
        zero = tl.zeros((BB, BH), dtype=n.dtype.element_ty)
        tl.store(n + now * H + cols[None, :], tl.where(active, N, zero), mask=m)
        g = ifv + now * (3 * H) + cols[None, :]
        tl.store(g, tl.where(active, i, zero), mask=m)
        tl.store(g + H, tl.where(active, f, zero), mask=m)
        tl.store(g + 2 * H, tl.where(active, V, zero), mask=m)
        tl.store(forget + now * H + cols[None, :], tl.where(active, kept, zero), mask=m)
        tl.store(ltm + nxt * H + cols[None, :], tl.where(active, kept + N * i, ltm_t), mask=m)  # remember

    @triton.jit
    def _use(W_uT, b_u, stm, ifv, u, forget, now, nxt, row_ok, active, cols, H,
             BB: tl.constexpr, BH: tl.constexpr, F64: tl.constexpr, STAGES: tl.constexpr, CACHE: tl.constexpr):
        m = row_ok[:, None] & (cols < H)[None, :]
        zero = tl.zeros((BB, BH), dtype=u.dtype.element_ty)
        pre_u = zero + tl.load(b_u + cols, mask=cols < H, other=0.0)[None, :]
        pre_u = _product(pre_u, forget, H, W_uT, now, row_ok, cols, H, H, BH, F64, STAGES, CACHE)  # + W_u forget
        U = _tanh(pre_u)
        V = tl.load(ifv + now * (3 * H) + 2 * H + cols[None, :], mask=m, other=0.0)
        tl.store(u + now * H + cols[None, :], tl.where(active, U, zero), mask=m)
        tl.store(stm + nxt * H + cols[None, :], tl.where(active, U * V, zero), mask=m)   # use = U ⊙ V

    @triton.jit
    def _use_back(dout, DSTM, ifv, u, dpre, du_pre, now, r, active, m, cols, H,
                  BB: tl.constexpr, BH: tl.constexpr):
        """use = U ⊙ V: d V_pre into dpre's v block, d U_pre into du_pre."""
        zero = tl.zeros((BB, BH), dtype=u.dtype.element_ty)
        dstm = tl.load(DSTM + r * H + cols[None, :], mask=m, other=0.0)   # d stm_t from step t + 1
        dstm += tl.load(dout + now * H + cols[None, :], mask=m, other=0.0)
        U = tl.load(u + now * H + cols[None, :], mask=m, other=0.0)
        V = tl.load(ifv + now * (3 * H) + 2 * H + cols[None, :], mask=m, other=0.0)
        tl.store(dpre + now * (4 * H) + 3 * H + cols[None, :], tl.where(active, dstm * U * V * (1.0 - V), zero),
                 mask=m)
        tl.store(du_pre + now * H + cols[None, :], tl.where(active, dstm * V * (1.0 - U * U), zero), mask=m)

    @triton.jit
    def _remember_back(W_u, ltm, n, ifv, dpre, du_pre, DLTM, now, r, row_ok, active, m, cols, H,
                       BB: tl.constexpr, BH: tl.constexpr, F64: tl.constexpr, STAGES: tl.constexpr,
                       CACHE: tl.constexpr):
        """dforget = dltm + d U_pre · W_u (remember = forget + learn; U reads forget), then learn = N ⊙ i
        and forget = ltm ⊙ f into dpre's n, i, f blocks, and dltm to the previous step."""
        zero = tl.zeros((BB, BH), dtype=n.dtype.element_ty)
        dltm = tl.load(DLTM + r * H + cols[None, :], mask=m, other=0.0)
        dforget = _product(dltm, du_pre, H, W_u, now, row_ok, cols, H, H, BH, F64, STAGES, CACHE)
        N = tl.load(n + now * H + cols[None, :], mask=m, other=0.0)
        g = ifv + now * (3 * H) + cols[None, :]
        i = tl.load(g, mask=m, other=0.0)
        f = tl.load(g + H, mask=m, other=0.0)
        ltm_t = tl.load(ltm + now * H + cols[None, :], mask=m, other=0.0)
        d = dpre + now * (4 * H) + cols[None, :]
        tl.store(d, tl.where(active, dltm * i * (1.0 - N * N), zero), mask=m)              # learn = N ⊙ i
        tl.store(d + H, tl.where(active, dltm * N * i * (1.0 - i), zero), mask=m)
        tl.store(d + 2 * H, tl.where(active, dforget * ltm_t * f * (1.0 - f), zero), mask=m)  # forget = ltm ⊙ f
        tl.store(DLTM + r * H + cols[None, :], tl.where(active, dforget * f, dltm), mask=m)

    @triton.jit
    def _to_previous_stm(W_hh, dpre, now, row_ok, cols, H, BB: tl.constexpr, BH: tl.constexpr,
                         F64: tl.constexpr, STAGES: tl.constexpr, CACHE: tl.constexpr):
        """d stm_{t-1} = dpre · W_hh, through all four gates, for units `cols`."""
        zero = tl.zeros((BB, BH), dtype=dpre.dtype.element_ty)
        return _product(zero, dpre, 4 * H, W_hh, now, row_ok, cols, 4 * H, H, BH, F64, STAGES, CACHE)

    # ---- the kernels: every tensor is stacked over directions; each program steps to its own ----
    # SPLIT: program (unit block, row block, direction), its own units, a barrier across the row
    # block's programs after each phase; else program (row block, direction), every unit block of its
    # rows in turn, its own threads' barrier. T and B change from batch to batch: not specialized on,
    # so a new shape never recompiles.

    @triton.jit(do_not_specialize=["T", "B"])
    def _forward_kernel(proj, lengths, W_hhT, W_uT, b_u, ltm, stm, n, ifv, u, forget, counters, T, B, H,
                        BB: tl.constexpr, BH: tl.constexpr, F64: tl.constexpr, STAGES: tl.constexpr,
                        SPLIT: tl.constexpr):
        if SPLIT:
            d, row_block = tl.program_id(2), tl.program_id(1)
        else:
            d, row_block = tl.program_id(1), tl.program_id(0)
        proj += d * T * B * 4 * H
        W_hhT += d * H * 4 * H
        W_uT += d * H * H
        b_u += d * H
        ltm += d * (T + 1) * B * H
        stm += d * (T + 1) * B * H
        n += d * T * B * H
        ifv += d * T * B * 3 * H
        u += d * T * B * H
        forget += d * T * B * H
        counter = counters + d * tl.num_programs(1) + row_block
        parties = tl.num_programs(0)
        rows = row_block * BB + tl.arange(0, BB)                      # (BB,)
        row_ok = rows < B
        length = tl.load(lengths + rows, mask=row_ok, other=0)
        for t in range(T):
            active = (t < length)[:, None]                           # (BB, 1): still reading at step t
            now = (t * B + rows)[:, None]
            if SPLIT:
                cols = tl.program_id(0) * BH + tl.arange(0, BH)      # this program's hidden units
                _learn_forget_remember(proj, W_hhT, ltm, stm, n, ifv, forget, now, now + B, row_ok, active, cols,
                                       H, BB, BH, F64, STAGES, ".cg")
                _grid_barrier(counter, parties * (2 * t + 1))
                _use(W_uT, b_u, stm, ifv, u, forget, now, now + B, row_ok, active, cols, H, BB, BH, F64, STAGES,
                     ".cg")
                _grid_barrier(counter, parties * (2 * t + 2))
            else:
                for c0 in range(0, H, BH):
                    _learn_forget_remember(proj, W_hhT, ltm, stm, n, ifv, forget, now, now + B, row_ok, active,
                                           c0 + tl.arange(0, BH), H, BB, BH, F64, STAGES, "")
                tl.debug_barrier()  # the use phase reads every unit's forget, written by other threads
                for c0 in range(0, H, BH):
                    _use(W_uT, b_u, stm, ifv, u, forget, now, now + B, row_ok, active, c0 + tl.arange(0, BH), H,
                         BB, BH, F64, STAGES, "")
                tl.debug_barrier()  # the next step reads all of stm

    # Backward, split: per step two barriers, after the use phase (the forget phase reads every unit's
    # d U_pre) and after the forget/learn phase (the product to the previous stm reads all of dpre).
    # Each program then writes only its own units of dstm, which only it reads next step, and the next
    # step's writes go to step t - 1's slices: no third barrier.
    @triton.jit(do_not_specialize=["T", "B"])
    def _backward_kernel(dout, lengths, W_hh, W_u, ltm, n, ifv, u, dpre, du_pre, DLTM, DSTM, counters, T, B, H,
                         BB: tl.constexpr, BH: tl.constexpr, F64: tl.constexpr, STAGES: tl.constexpr,
                         SPLIT: tl.constexpr):
        if SPLIT:
            d, row_block = tl.program_id(2), tl.program_id(1)
        else:
            d, row_block = tl.program_id(1), tl.program_id(0)
        dout += d * T * B * H
        W_hh += d * 4 * H * H
        W_u += d * H * H
        ltm += d * (T + 1) * B * H
        n += d * T * B * H
        ifv += d * T * B * 3 * H
        u += d * T * B * H
        dpre += d * T * B * 4 * H
        du_pre += d * T * B * H
        DLTM += d * B * H
        DSTM += d * B * H
        counter = counters + d * tl.num_programs(1) + row_block
        parties = tl.num_programs(0)
        rows = row_block * BB + tl.arange(0, BB)
        row_ok = rows < B
        r = rows[:, None]
        length = tl.load(lengths + rows, mask=row_ok, other=0)
        for step in range(T):
            t = T - 1 - step
            active = (t < length)[:, None]
            now = (t * B + rows)[:, None]
            if SPLIT:
                cols = tl.program_id(0) * BH + tl.arange(0, BH)
                m = row_ok[:, None] & (cols < H)[None, :]
                dstm_next = tl.load(DSTM + r * H + cols[None, :], mask=m, other=0.0)
                _use_back(dout, DSTM, ifv, u, dpre, du_pre, now, r, active, m, cols, H, BB, BH)
                _grid_barrier(counter, parties * (2 * step + 1))
                _remember_back(W_u, ltm, n, ifv, dpre, du_pre, DLTM, now, r, row_ok, active, m, cols, H,
                               BB, BH, F64, STAGES, ".cg")
                _grid_barrier(counter, parties * (2 * step + 2))
                dprev = _to_previous_stm(W_hh, dpre, now, row_ok, cols, H, BB, BH, F64, STAGES, ".cg")
                tl.store(DSTM + r * H + cols[None, :], tl.where(active, dprev, dstm_next), mask=m)
            else:
                for c0 in range(0, H, BH):
                    cols = c0 + tl.arange(0, BH)
                    _use_back(dout, DSTM, ifv, u, dpre, du_pre, now, r, active, row_ok[:, None] & (cols < H)[None, :],
                              cols, H, BB, BH)
                tl.debug_barrier()
                for c0 in range(0, H, BH):
                    cols = c0 + tl.arange(0, BH)
                    _remember_back(W_u, ltm, n, ifv, dpre, du_pre, DLTM, now, r, row_ok, active,
                                   row_ok[:, None] & (cols < H)[None, :], cols, H, BB, BH, F64, STAGES, "")
                tl.debug_barrier()
                for c0 in range(0, H, BH):
                    cols = c0 + tl.arange(0, BH)
                    m = row_ok[:, None] & (cols < H)[None, :]
                    dprev = _to_previous_stm(W_hh, dpre, now, row_ok, cols, H, BB, BH, F64, STAGES, "")
                    dstm = tl.load(DSTM + r * H + cols[None, :], mask=m, other=0.0)
                    tl.store(DSTM + r * H + cols[None, :], tl.where(active, dprev, dstm), mask=m)
                tl.debug_barrier()


def _split_units(x, B: int, H: int, D: int, settings: TritonSettings) -> int | None:
    """Units a program for the split kernels, or None for the row-block ones. On CUDA every program of
    the launch must be resident at once (their barriers wait on each other), so at most one per
    multiprocessor: `split_units`, or twice as many where the batch needs fewer programs."""
    if not settings.split:
        return None
    if x.is_cuda:
        sms = torch.cuda.get_device_properties(x.device).multi_processor_count
        for units in (settings.split_units, 2 * settings.split_units):
            if triton.cdiv(H, units) * triton.cdiv(B, settings.rows) * D <= sms:
                return units
        return None
    # the interpreter runs programs one after another: only with one unit block, where nobody waits
    # on anybody, so tests without a GPU still cover everything in these kernels but the waiting
    return settings.split_units if interpreted() and H <= settings.split_units else None


def _launch(kernel, args, units, row_blocks, T, B, H, D, like, settings: TritonSettings) -> None:
    """One launch of `kernel`: split (`units` a program, one counter per row block and direction for
    its barriers) or per row block (units None)."""
    f64 = like.dtype == torch.float64
    if units:
        counters = torch.zeros(D * row_blocks, dtype=torch.int32, device=like.device)
        kernel[(triton.cdiv(H, units), row_blocks, D)](
            *args, counters, T, B, H, BB=settings.rows, BH=units, F64=f64, STAGES=settings.stages, SPLIT=True,
            num_warps=settings.split_warps)
    else:
        counters = torch.zeros(1, dtype=torch.int32, device=like.device)  # no barrier across programs
        kernel[(row_blocks, D)](
            *args, counters, T, B, H, BB=settings.rows, BH=settings.units, F64=f64, STAGES=settings.stages,
            SPLIT=False, num_warps=settings.warps)


def forward(batch: SortedBatch, projs, biases, ltm0s, stm0s, weights_hh, weights_u, biases_u,
            save: bool = True, settings: TritonSettings = DEFAULT) -> list[History]:
    """All directions of a layer in one launch; the histories are views of buffers stacked over
    directions (the kernels' layout)."""
    proj = torch.stack(projs) + torch.stack(biases)[:, None, None, :]  # (D, T, B, 4H), with the gates' bias
    D, T, B, G = proj.shape
    H = G // 4
    ltm = proj.new_empty(D, T + 1, B, H)
    stm = proj.new_empty(D, T + 1, B, H)
    n, u, forget = (proj.new_empty(D, T, B, H) for _ in range(3))
    ifv = proj.new_empty(D, T, B, 3 * H)
    ltm[:, 0], stm[:, 0] = torch.stack(ltm0s), torch.stack(stm0s)
    if B:
        W_hhT = torch.stack([w.detach().t() for w in weights_hh])    # (D, H, 4H)
        W_uT = torch.stack([w.detach().t() for w in weights_u])      # (D, H, H)
        b_u = torch.stack([b.detach() for b in biases_u])             # (D, H)
        units, row_blocks = _split_units(proj, B, H, D, settings), triton.cdiv(B, settings.rows)
        args = (proj, batch.lengths.contiguous(), W_hhT, W_uT, b_u, ltm, stm, n, ifv, u, forget)
        _launch(_forward_kernel, args, units, row_blocks, T, B, H, D, proj, settings)
    return [History(*(t[d] for t in (ltm, stm, n, ifv, u, forget))) for d in range(D)]


def backward(batch: SortedBatch, grads, weights_hh, weights_u, histories: list[History],
             settings: TritonSettings = DEFAULT):
    """python_loop.backward's loop for all directions in one launch."""
    D = len(histories)
    T, B, H = histories[0].n.shape
    ltm, n, ifv, u = (torch.stack([h[k] for h in histories]) for k in (0, 2, 3, 4))  # the kernels' layout

    def stacked(index, shape):
        return torch.stack([g[index] if g[index] is not None else n.new_zeros(shape) for g in grads])

    dout = stacked(0, (T, B, H))
    DLTM, DSTM = stacked(1, (B, H)), stacked(2, (B, H))  # updated in place, step by step
    dpre = n.new_empty(D, T, B, 4 * H)
    du_pre = n.new_empty(D, T, B, H)
    if B:
        W_hh = torch.stack([w.detach() for w in weights_hh])
        W_u = torch.stack([w.detach() for w in weights_u])
        units, row_blocks = _split_units(n, B, H, D, settings), triton.cdiv(B, settings.rows)
        args = (dout, batch.lengths.contiguous(), W_hh, W_u, ltm, n, ifv, u, dpre, du_pre, DLTM, DSTM)
        _launch(_backward_kernel, args, units, row_blocks, T, B, H, D, n, settings)
    return [(dpre[d], du_pre[d], DLTM[d], DSTM[d]) for d in range(D)]
