"""The compiled backend: four_gate.cpp built once on this machine, then cached, and run.

It is an accelerator, never a requirement: with no C++ compiler, a failed build, or
``REVIEWLSTM_KERNEL=off``, the dispatcher runs python_loop.py instead (tests hold both to the
readable cell). The build runs once: on first use by a long job (training, scoring a file,
evaluating, serving), or ahead of time with ``reviewlstm build-kernel``, which says whether it
worked. Quick CLI jobs (rating or explaining a few texts) use it only once it is built. The cache
lives in ``settings.cache_root()``, one directory per torch version, so an upgrade rebuilds.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import sys
import threading
import time
from pathlib import Path

import torch

from reviewlstm import settings
from reviewlstm.nn.fourgate import products
from reviewlstm.nn.fourgate.history import History, SortedBatch

SOURCE = Path(__file__).parent / "four_gate.cpp"
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


_holds = 0  # jobs running under `no_build`


@contextlib.contextmanager
def no_build():
    """While a small job runs: use a cached build if there is one, never start one, and leave the
    build to a later job (unlike `allow_build(False)`, which holds for the process)."""
    global _holds
    with _lock:
        _holds += 1
    try:
        yield
    finally:
        with _lock:
            _holds -= 1


def allow_build(allowed: bool) -> None:
    """Whether `load` may compile when nothing is cached. The CLI turns it off for quick jobs (a few
    texts to rate or explain): a minute of compiling would cost more than the Python loop ever will."""
    global _build_allowed
    _build_allowed = allowed


def cache_dir() -> Path:
    return settings.cache_root() / "kernels" / f"torch-{torch.__version__.replace('+', '-')}"


def enabled() -> bool:
    return settings.switch("REVIEWLSTM_KERNEL")


def load(build: bool | None = None):
    """The compiled module, or None (then `error()` says why). Builds on first use; thread-safe.
    build=False: use a cached build only, and leave building to a later call (a small job's choice:
    `built()` says whether there is one); None: as `allow_build` says."""
    global _module, _error, _tried, _built_now
    if _tried or not enabled():
        return _module
    with _lock:
        if _tried:
            return _module
        try:
            # a directory per build: two versions of the source (two checkouts, an upgrade) sharing one
            # would rewrite each other's build.ninja and rebuild in turn, under each other's feet
            names = [_name(*flags) for flags in BUILDS]
            built = _cached(names)
            if not any(built) and (build is False or (build is None and (_holds or not _build_allowed))):
                _error = "not built yet (quick jobs do not build it; `reviewlstm build-kernel` does)"
                # the CLI's quick-job switch holds for the process; a job's own choice leaves it to the next
                _tried = build is None and not _holds
                return None
            _tried = True
            if not any(built):
                print("reviewlstm: compiling the fast LSTM kernel for this machine (once, a minute or so; "
                      "REVIEWLSTM_KERNEL=off skips it)", file=sys.stderr, flush=True)
            # a cached build first; else each build in turn, the first that compiles wins
            order = sorted(range(len(BUILDS)), key=lambda i: not built[i])
            for n, i in enumerate(order):
                (cflags, ldflags), name = BUILDS[i], names[i]
                build = cache_dir() / name
                build.mkdir(parents=True, exist_ok=True)
                try:
                    if built[i]:
                        _module = _import_built(name, build)
                        products.apply(_module, build, settings.products())
                        break
                    with _build_lock(build):
                        if any(build.glob(f"{name}*.so")):  # another process built it while this one waited
                            _module = _import_built(name, build)
                            products.apply(_module, build, settings.products())
                            break
                        _clear_stale_lock(build)
                        from torch.utils import cpp_extension  # only to build: it brings setuptools, which loading a cached build never needs
                        _module = cpp_extension.load(name=name, sources=[str(SOURCE)], build_directory=str(build),
                                                     verbose=False, extra_cflags=cflags, extra_ldflags=ldflags)
                        # the matrix libraries measured once, under the build's lock, beside the build
                        products.apply(_module, build, settings.products())
                    _built_now = not any(built)
                    break
                except Exception as exc:
                    if n == len(order) - 1 or isinstance(exc, TimeoutError):  # waited out: no other build either
                        raise
        except Exception as exc:  # no compiler, no headers, a full disk: fall back, and say why once
            _tried = True
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            _error = f"{type(exc).__name__}: {first}"[:300]
            print(f"reviewlstm: fast kernel unavailable, using the Python loop ({_error})",
                  file=sys.stderr, flush=True)
        return _module


class _build_lock:
    """An exclusive `flock` on the build directory's `reviewlstm.lock`, held while this process builds.
    The kernel drops it when its holder dies, however it dies (kill -9 included), so a killed build
    never blocks the next; a build still running is waited for at most `settings.kernel_wait_seconds()`, then this
    process runs the Python loop and says so."""

    def __init__(self, build: Path):
        self.path = build / "reviewlstm.lock"
        self.fd: int | None = None

    def __enter__(self):
        import fcntl
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline, said = time.monotonic() + settings.kernel_wait_seconds(), False
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return self
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(self.fd)
                    self.fd = None
                    raise TimeoutError(f"another process has been building the kernel in {self.path.parent} for "
                                       f"over {settings.kernel_wait_seconds():.0f} s (REVIEWLSTM_KERNEL_WAIT)") from None
                if not said:
                    print("reviewlstm: waiting for another process's build of the fast LSTM kernel", file=sys.stderr,
                          flush=True)
                    said = True
                time.sleep(0.5)

    def __exit__(self, *exc):
        if self.fd is not None:
            os.close(self.fd)  # closing drops the lock; the file stays, so every process locks the same one


def _import_built(name: str, build: Path):
    """A cached build, imported as is. Its name hashes the source and flags and its directory names
    the torch version, so it is the module this source would build. Going through
    `cpp_extension.load` instead would take the build's file lock even to load, and wait forever on a
    lock a killed build left behind."""
    import importlib.util
    so = next(build.glob(f"{name}*.so"))
    spec = importlib.util.spec_from_file_location(name, so)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _clear_stale_lock(build: Path) -> None:
    """torch's build lock is a bare file that a killed build leaves behind, and every later build would
    wait on it forever. Called only while holding `_build_lock`, when no other reviewlstm build can be
    running in this directory: any such file is a killed build's, removed, and said so."""
    lock = build / "lock"
    if lock.exists():
        lock.unlink(missing_ok=True)
        print(f"reviewlstm: removed {lock}, left by a build of the kernel that was stopped", file=sys.stderr, flush=True)


def _cached(names: list[str]) -> list[bool]:
    """Per build name, whether its module is in the cache."""
    return [any((cache_dir() / name).glob(f"{name}*.so")) for name in names]


def built() -> bool:
    """Whether a build for this source is cached (loading it costs a fraction of a second)."""
    return _module is not None or (enabled() and any(_cached([_name(*flags) for flags in BUILDS])))


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
        return f"compiled ({cache_dir()}; {products.current().describe()})"
    return f"unavailable: {_error}" if _tried else "not loaded yet"


def forward(module, batch: SortedBatch, projs, biases, ltm0s, stm0s, weights_hh, weights_u, biases_u,
            save: bool = True) -> list[History]:
    """Every direction side by side. `projs` are the compiled loop's own scratch (it adds each step's
    W_hh stm into them in place); weights are read as stored, transposed by BLAS on the fly. Nothing is
    kept between calls: a fused optimizer step rewrites weights without bumping their version counter,
    so no cache keyed on it could be trusted."""
    hists = module.forward_dirs(list(projs), batch.sizes, [s.contiguous() for s in ltm0s],
                                [s.contiguous() for s in stm0s], [w.detach().contiguous() for w in weights_hh],
                                [w.detach().contiguous() for w in weights_u], list(biases_u), list(biases), save)
    return [History(*h) for h in hists]


def backward(module, batch: SortedBatch, grads, weights_hh, weights_u, histories: list[History]):
    empty = histories[0].n.new_empty(0)  # "no gradient reached this output"
    grads = [[empty if g is None else g for g in per] for per in grads]
    return [tuple(r) for r in module.backward_dirs(grads, batch.sizes, list(weights_hh), list(weights_u),
                                                   [list(h) for h in histories])]
