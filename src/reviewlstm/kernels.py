"""The compiled four-gate LSTM loop (csrc/four_gate.cpp): built once on this machine, then cached.

It is an accelerator, never a requirement: with no C++ compiler, a failed build, or
``REVIEWLSTM_KERNEL=off``, fast.py runs the same algorithm in Python (and tests hold both to the
readable cell). The build takes about a minute, once: on first use by a long job (training, scoring
a file, evaluating, serving), or ahead of time with ``reviewlstm build-kernel``, which says whether it
worked. Quick CLI jobs (rating or explaining a few texts) use it only once it is built. The cache lives in ``$REVIEWLSTM_CACHE`` (default
``~/.cache/reviewlstm``), one directory per torch version, so an upgrade rebuilds.
"""
from __future__ import annotations

import hashlib
import sys
import threading
from pathlib import Path

import torch

from . import settings

SOURCE = Path(__file__).parent / "csrc" / "four_gate.cpp"
# -march=native: the kernel is built on the machine that runs it (the cache is per user);
# -ffast-math lets gcc call glibc's vectorised tanh/exp, within a few ulp of the scalar ones;
# -fopenmp: at::parallel_for is a header template that runs its range on the calling thread alone
# unless the extension itself is compiled with OpenMP (torch's own libgomp is the one loaded, once).
# A compiler without OpenMP (Apple's clang) gets the second build: the same loop, directions one
# after another.
BUILDS = [(["-O3", "-march=native", "-ffast-math", "-fopenmp"], ["-fopenmp"]),
          (["-O3", "-march=native", "-ffast-math", "-fopenmp-simd"], [])]


def _name(cflags, ldflags) -> str:
    """The source's and flags' hash in the name: an edited or upgraded kernel is a new module, built afresh."""
    digest = hashlib.sha256(SOURCE.read_bytes() + " ".join(cflags + ldflags).encode()).hexdigest()[:10]
    return "reviewlstm_four_gate_" + digest

_lock = threading.Lock()
_module = None
_error: str | None = None
_tried = False
_build_allowed = True
_built_now = False  # this process compiled it (nothing was cached): callers time that apart


def allow_build(allowed: bool) -> None:
    """Whether `load` may compile when nothing is cached. The CLI turns it off for quick jobs (a few
    texts to rate or explain): a minute of compiling would cost more than the Python loop ever will."""
    global _build_allowed
    _build_allowed = allowed


def cache_dir() -> Path:
    return settings.cache_root() / "kernels" / f"torch-{torch.__version__.replace('+', '-')}"


def enabled() -> bool:
    return settings.switch("REVIEWLSTM_KERNEL")


def load(verbose: bool = True):
    """The compiled module, or None (then `error()` says why). Builds on first use; thread-safe."""
    global _module, _error, _tried, _built_now
    if _tried or not enabled():
        return _module
    with _lock:
        if _tried:
            return _module
        _tried = True
        try:
            from torch.utils import cpp_extension
            build = cache_dir()
            names = [_name(*flags) for flags in BUILDS]
            built = [any(build.glob(f"{name}*.so")) for name in names]
            if not any(built) and not _build_allowed:
                _error = "not built yet (quick jobs do not build it; `reviewlstm build-kernel` does)"
                return None
            build.mkdir(parents=True, exist_ok=True)
            if not any(built) and verbose:
                print("reviewlstm: compiling the fast LSTM kernel for this machine (once, about a minute; "
                      "REVIEWLSTM_KERNEL=off skips it)", file=sys.stderr, flush=True)
            # a cached build first; else each build in turn, the first that compiles wins
            order = sorted(range(len(BUILDS)), key=lambda i: not built[i])
            for n, i in enumerate(order):
                (cflags, ldflags), name = BUILDS[i], names[i]
                try:
                    _module = cpp_extension.load(name=name, sources=[str(SOURCE)], build_directory=str(build),
                                                 verbose=False, extra_cflags=cflags, extra_ldflags=ldflags)
                    _built_now = not any(built)
                    break
                except Exception:
                    if n == len(order) - 1:
                        raise
        except Exception as exc:  # no compiler, no headers, a full disk: fall back, and say why once
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            _error = f"{type(exc).__name__}: {first}"[:300]
            if verbose:
                print(f"reviewlstm: fast kernel unavailable, using the Python loop ({_error})",
                      file=sys.stderr, flush=True)
        return _module


def tried() -> bool:
    """Whether `load` has run in this process (so a call now costs nothing)."""
    return _tried


def built_now() -> bool:
    """Whether this process compiled the kernel (nothing was cached for it)."""
    return _built_now


def error() -> str | None:
    return _error


def status() -> str:
    if not enabled():
        return "off (REVIEWLSTM_KERNEL=off)"
    if _module is not None:
        return f"compiled ({cache_dir()})"
    return f"unavailable: {_error}" if _tried else "not loaded yet"
