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
import contextlib
import time
from dataclasses import dataclass

from reviewlstm import settings

from reviewlstm.nn.fourgate import compiled
from reviewlstm.nn.fourgate.dispatch import BACKENDS, choose, run
from reviewlstm.nn.fourgate.history import History, SortedBatch

__all__ = ["BACKENDS", "BUILD_ROWS", "History", "Kernel", "SortedBatch", "choose", "run", "warm_up"]


# Rows from which a job (scoring a file) is done sooner by building the kernel first (once per
# machine) than by the Python loop: the break-even `python bench/compile_threshold.py` measures
# (docs/experiments/speed.md, "Scoring a large file"); REVIEWLSTM_BUILD_ROWS moves it.
BUILD_ROWS = 200_000


@dataclass(frozen=True)
class Kernel:
    """The compiled loop after `warm_up`: whether it runs, whether this call compiled it (and how
    long that took), a line saying which build and matrix libraries are in force, or why not, and
    whether a build was left to a later job (`held_back`: a job too small to repay it)."""
    ready: bool
    built_now: bool
    seconds: float
    status: str
    held_back: bool = False

    def hold(self):
        """For the job `warm_up` readied: while it runs, no call of the model starts the build it
        held back (a later, larger job or `reviewlstm build-kernel` does); a no-op otherwise."""
        return compiled.no_build() if self.held_back else contextlib.nullcontext()


def warm_up(build: bool = True, rows: int | None = None) -> Kernel:
    """The one way a job or a surface readies the fast path before its work: load the compiled loop,
    compiling it first if this machine has none (once: about a minute).

    build=False: a quick job (a few texts to rate or explain): this process uses a cached build if
    there is one and never starts one, since the Python loop answers before a build would finish.
    rows: a job of that many texts to come (scoring a file): it builds first only from BUILD_ROWS
    rows, the break-even; a smaller one uses a cached build or the Python loop and holds the build
    back for a later job while it runs (`Kernel.hold()`), without turning builds off for the process."""
    if not build:
        compiled.allow_build(False)
    small = rows is not None and rows < settings.build_rows(BUILD_ROWS)
    held_back = small and not compiled.tried() and not compiled.built() and compiled.enabled()
    start = time.perf_counter()
    module = compiled.load(False if small else None)
    return Kernel(module is not None, compiled.built_now(), time.perf_counter() - start, compiled.status(), held_back)
