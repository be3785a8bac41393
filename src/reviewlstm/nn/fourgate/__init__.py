"""The four-gate LSTM's fast path, one subsystem with one way in:

    fourgate.run(cells, events, lengths, ltm0s, stm0s, backend="auto") -> [(outputs, ltm, stm)]

used by layers.Recurrent when no gate activations are asked for (the readable step loop over
cells/lstm.py stays the reference, and runs when they are). What makes it fast, whatever the
backend: the event's share of every gate is projected for all steps in one product; rows are
sorted longest first so the batch shrinks instead of being masked; the state history doubles as
the outputs; backward keeps only the two products through W_hh and W_u inside the loop and makes
the weight gradients as one product over all steps after it.

    history.py      History (ltm, stm, n, ifv, u, forget: what forward keeps) and SortedBatch
    dispatch.py     run(), the backend choice, the one autograd node and the weight gradients
    python_loop.py  the loop in Python: the fallback and the plainest statement of the algorithm
    compiled.py     four_gate.cpp built once per machine (cached) and run on CPU, directions side by side
    triton_loop.py  on CUDA, one Triton launch per layer runs every direction's whole sequence

The compiled loop is built once per machine; `warm_up` is the one way a job or a surface makes it
ready before work starts (or says this process never builds it).

tests/nn/test_fourgate.py holds every backend available on the machine to the readable loop.
"""
import time
from dataclasses import dataclass

from reviewlstm.nn.fourgate import compiled
from reviewlstm.nn.fourgate.dispatch import BACKENDS, choose, run
from reviewlstm.nn.fourgate.history import History, SortedBatch

__all__ = ["BACKENDS", "History", "Kernel", "SortedBatch", "choose", "run", "warm_up"]


@dataclass(frozen=True)
class Kernel:
    """The compiled loop after `warm_up`: whether it runs, whether this call compiled it (and how
    long that took), and a line saying which build and matrix libraries are in force, or why not."""
    ready: bool
    built_now: bool
    seconds: float
    status: str


def warm_up(build: bool = True) -> Kernel:
    """Load the compiled loop (compiling it first if this machine has none, once: about a minute).
    build=False: a quick job (a few texts to rate or explain): this process uses a cached build if
    there is one and never starts one, since the Python loop answers before a build would finish."""
    if not build:
        compiled.allow_build(False)
    start = time.perf_counter()
    module = compiled.load()
    return Kernel(module is not None, compiled.built_now(), time.perf_counter() - start, compiled.status())
