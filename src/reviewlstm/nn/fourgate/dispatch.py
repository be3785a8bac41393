"""The one way into the four-gate fast path: sort, project, choose a backend, one autograd node.

Every backend has the same two functions over history.py's types (one direction's tensors per list
entry; the gates' bias given apart from the projection, which the backend may overwrite):

    forward(batch, projs, biases, ltm0s, stm0s, weights_hh, weights_u, biases_u, save) -> [History]
    backward(batch, grads, weights_hh, weights_u, histories) -> [(dpre, du_pre, dltm0, dstm0)]

and `_FourGateLoop` turns them into one autograd node for all directions of a layer: the weight
and bias gradients are the same products over all steps for every backend, made here once.
"""
from __future__ import annotations

from functools import partial

import torch

from reviewlstm import settings
from reviewlstm.nn.fourgate import compiled, products, python_loop
from reviewlstm.nn.fourgate.history import History, SortedBatch

BACKENDS = ("auto", "compiled", "triton", "python")


def choose(x: torch.Tensor, backend: str = "auto", triton_settings=None):
    """(name, forward, backward) of the backend that runs on x (`triton_settings`: a
    triton_loop.TritonSettings for the Triton kernels' launches, None for the defaults).

    auto: on CUDA the Triton loop when Triton imports (REVIEWLSTM_TRITON=off opts out), on CPU the
    compiled loop when it built (REVIEWLSTM_KERNEL=off opts out), else the Python loop. A named backend
    is insisted on: one that cannot run on x is an error, not a quiet fallback. CPU calls never import
    Triton (importing it is slower than rating a review)."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}; got {backend!r}")
    if backend == "triton" or (backend == "auto" and x.is_cuda and settings.switch("REVIEWLSTM_TRITON")):
        from reviewlstm.nn.fourgate import triton_loop
        if triton_loop.available(x):
            launch = triton_settings or triton_loop.DEFAULT
            return ("triton", partial(triton_loop.forward, settings=launch),
                    partial(triton_loop.backward, settings=launch))
        if backend == "triton":
            raise RuntimeError("the Triton backend needs Triton and a CUDA float32/float64 tensor "
                               "(or TRITON_INTERPRET=1 on CPU)")
    if backend in ("compiled", "auto") and x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64):
        module = compiled.load()
        if module is not None:
            return "compiled", partial(compiled.forward, module), partial(compiled.backward, module)
    if backend == "compiled":
        if x.device.type != "cpu" or x.dtype not in (torch.float32, torch.float64):
            raise RuntimeError("the compiled backend runs on CPU float32/float64 tensors only")
        raise RuntimeError(f"the compiled backend is unavailable: {compiled.error() or compiled.status()}")
    return "python", python_loop.forward, python_loop.backward


class _FourGateLoop(torch.autograd.Function):
    """All directions of a layer as one node. Inputs after (backend, batch): per direction (proj,
    ltm0, stm0, weight_hh, weight_u, bias_u, bias); outputs per direction: outputs (T, B, H) and the
    final ltm, stm (B, H) of each row, read at its own length."""

    @staticmethod
    def forward(ctx, backend, batch: SortedBatch, *flat):
        _, forward, backward = backend
        per = [flat[7 * d:7 * d + 7] for d in range(len(flat) // 7)]
        projs, ltm0s, stm0s, weights_hh, weights_u, biases_u, biases = zip(*per)
        histories = forward(batch, projs, biases, ltm0s, stm0s, weights_hh, weights_u, biases_u, True)
        ctx.backward, ctx.batch, ctx.D = backward, batch, len(per)
        ctx.module = compiled.load() if backend[0] == "compiled" else None  # its products' libraries
        ctx.save_for_backward(*weights_hh, *weights_u, *(t for h in histories for t in h))
        return tuple(_outputs(batch, histories))

    @staticmethod
    def backward(ctx, *grads):
        D = ctx.D
        saved = ctx.saved_tensors
        weights_hh, weights_u = saved[:D], saved[D:2 * D]
        histories = [History(*saved[2 * D + 6 * d:2 * D + 6 * d + 6]) for d in range(D)]
        per_grads = [grads[3 * d:3 * d + 3] for d in range(D)]
        results = ctx.backward(ctx.batch, per_grads, weights_hh, weights_u, histories)
        out = [None, None]
        for (dpre, du_pre, dltm0, dstm0), h in zip(results, histories):
            T, B, H = h.n.shape
            # one product over all steps each (rows past a sequence's end are zero in dpre and du_pre)
            d_weight_hh = products.mm(dpre.reshape(-1, 4 * H).t(), h.stm[:-1].reshape(-1, H), "weight_grad", ctx.module)
            d_weight_u = products.mm(du_pre.reshape(-1, H).t(), h.forget.reshape(-1, H), "weight_grad", ctx.module)
            # the biases entered every step's pre-activations
            out += [dpre, dltm0, dstm0, d_weight_hh, d_weight_u, du_pre.sum((0, 1)), dpre.sum((0, 1))]
        return tuple(out)


def _outputs(batch: SortedBatch, histories):
    for h in histories:
        yield h.stm[1:]
        yield batch.final(h.ltm)
        yield batch.final(h.stm)


def run(cells, events, lengths: torch.Tensor, ltm0s, stm0s, backend: str = "auto", triton_settings=None):
    """Run each direction's four-gate `cell` (cells/lstm.py's LSTMCell) over its events (B, T, E),
    all with `lengths` (B,) (the backward direction's events already reversed within each length).

    Returns [(outputs (B, T, H), ltm (B, H), stm (B, H))] per direction: outputs are zero at padded
    steps and the final state is each sequence's state after its last word, exactly as
    layers.Recurrent's readable loop. Without autograd (inference) nothing is kept for backward.
    `backend`: one of BACKENDS (see `choose`)."""
    x = events[0]
    B, T, _ = x.shape
    _, forward, _ = chosen = choose(x, backend, triton_settings)
    # plain Python on the (few) lengths: at one review per call these bookkeeping steps would
    # otherwise cost more than the sequence itself
    lens = [min(n, T) for n in lengths.tolist()]
    # longest first; a batch that is already in that order (length-bucketed, or unpadded) is not copied
    in_order = all(a >= b for a, b in zip(lens, lens[1:]))
    order = None if in_order else torch.argsort(lengths, descending=True, stable=True)
    batch = SortedBatch.of(lens if in_order else sorted(lens, reverse=True), T, x.device)
    # time-major before projecting: copying (T, B, E) events is cheaper than (T, B, 4H) projections.
    # The projections are fresh tensors the backend owns (the compiled loop adds into them in place);
    # the gates' bias goes in apart (broadcasting it over (T, B, 4H) is one more pass the compiled
    # loop saves by adding it in its fused step)
    steps = [(e if in_order else e[order]).transpose(0, 1).contiguous() for e in events]          # (T, B, E)
    if chosen[0] == "compiled" and products.current().projection == "onednn":
        module = compiled.load()
        projs = [products.Project.apply(s.reshape(T * B, -1), cell.weight_ih, module).view(T, B, -1)
                 for cell, s in zip(cells, steps)]  # (T, B, 4H)
    else:
        projs = [(s.reshape(T * B, -1) @ cell.weight_ih.t()).view(T, B, -1) for cell, s in zip(cells, steps)]  # (T, B, 4H)
    if not in_order:
        ltm0s, stm0s = [s[order] for s in ltm0s], [s[order] for s in stm0s]
    params = [(cell.weight_hh, cell.weight_u, cell.bias_u, cell.bias) for cell in cells]
    grad = torch.is_grad_enabled() and any(
        t.requires_grad for p, l0, s0, ws in zip(projs, ltm0s, stm0s, params) for t in (p, l0, s0, *ws))
    if grad:
        flat = [t for p, l0, s0, (w_hh, w_u, b_u, b) in zip(projs, ltm0s, stm0s, params)
                for t in (p, l0, s0, w_hh, w_u, b_u, b)]
        outs = _FourGateLoop.apply(chosen, batch, *flat)
    else:
        w_hh, w_u, b_u, b = zip(*params)
        histories = forward(batch, projs, b, ltm0s, stm0s, w_hh, w_u, b_u, False)
        outs = list(_outputs(batch, histories))
    results = [outs[3 * d:3 * d + 3] for d in range(len(cells))]
    if in_order:
        return [(out.transpose(0, 1), ltm, stm) for out, ltm, stm in results]
    inverse = torch.argsort(order)
    return [(out.transpose(0, 1)[inverse], ltm[inverse], stm[inverse]) for out, ltm, stm in results]
