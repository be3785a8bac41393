"""Which library multiplies the compiled loop's matrices on this machine: measured once, then cached.

The four-gate path spends its time in matrix products of three kinds, and which library is fastest
for each depends on the CPU: MKL (torch's BLAS in the x86 wheels) wins on Intel's, oneDNN (also
inside torch) can be much faster on AMD's, where MKL takes a generic path; MKL's packed weights
(reordered once per call, reused by every step) pay at small batches.

    step_few      each step's W_hh·stm and W_u·forget with < 16 rows (a few reviews)
    step_many     the same with >= 16 rows (batches, training's forward)
    step_backward each step's products through W_u and W_hh in backward
    projection   the events' share of every gate, all steps at once: (T·B, E) @ W_ih^T
    weight_grad  the recurrent weights' gradients, all steps at once: dpre^T @ stm, du^T @ forget

Each is timed with each library on the default model's shapes, in this process, when the kernel is
first loaded on a machine; the choice is written beside the kernel (one file per CPU model) and read
from there ever after, never measured per call. A library other than BLAS is taken only when it is
at least `MARGIN` faster, so noise never moves a machine off the path every test holds.
REVIEWLSTM_PRODUCTS=blas|blas-packed|onednn forces one library for all (tests and benchmarks use it).
"""
from __future__ import annotations

import hashlib
import json
import os
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

LIBRARIES = ("blas", "blas-packed", "onednn")
MARGIN = 0.05
_STEP_CODES = {"blas": 0, "blas-packed": 1, "onednn": 2}


@dataclass(frozen=True)
class Choice:
    step_few: str = "blas"
    step_many: str = "blas"
    step_backward: str = "blas"
    projection: str = "blas"
    weight_grad: str = "blas"
    cpu: str = ""
    measured: dict = field(default_factory=dict)  # class -> library -> median seconds

    def describe(self) -> str:
        return (f"step products {self.step_few} (< 16 rows) / {self.step_many} (>= 16 rows) / "
                f"{self.step_backward} (backward), projection {self.projection}, weight gradients {self.weight_grad}")


_current = Choice()


def current() -> Choice:
    """The libraries in force in this process (BLAS everywhere until the kernel loads)."""
    return _current


def cpu_name() -> str:
    """The CPU's model name and instruction-set flags: what decides which library is faster."""
    try:
        info = Path("/proc/cpuinfo").read_text(errors="replace").splitlines()
        model = next((line.split(":", 1)[1].strip() for line in info if line.startswith("model name")), "")
        flags = next((line.split(":", 1)[1].strip() for line in info if line.startswith("flags")), "")
        return f"{model} [{hashlib.sha256(flags.encode()).hexdigest()[:8]}]"
    except OSError:
        import platform
        return platform.processor() or platform.machine()


def choice_path(build_dir: Path) -> Path:
    return build_dir / f"products-{hashlib.sha256(cpu_name().encode()).hexdigest()[:12]}.json"


def apply(module, build_dir: Path, forced: str | None = None) -> Choice:
    """Set the libraries of `module` (the compiled kernel): `forced` (one of LIBRARIES), else the
    choice cached in build_dir for this CPU, else measured now and cached."""
    if forced:
        if forced not in LIBRARIES:
            raise ValueError(f"REVIEWLSTM_PRODUCTS must be one of {', '.join(LIBRARIES)}, got {forced!r}")
        whole = "blas" if forced == "blas-packed" else forced
        choice = Choice(forced, forced, forced, whole, whole, cpu_name())
    else:
        choice = _read(choice_path(build_dir)) or measure(module)
        _write(choice_path(build_dir), choice)
    return use(module, choice)


def use(module, choice: Choice) -> Choice:
    """Put `choice` in force on `module`; returns what is in force (a library this torch lacks falls
    back to BLAS)."""
    global _current
    codes = module.set_step_libraries([_STEP_CODES[lib] for lib in (choice.step_few, choice.step_many, choice.step_backward)])
    names = {v: k for k, v in _STEP_CODES.items()}
    onednn = module.onednn_available()
    _current = Choice(*(names[c] for c in codes), choice.projection if onednn else "blas",
                      choice.weight_grad if onednn else "blas", choice.cpu, choice.measured)
    return _current


def _read(path: Path) -> Choice | None:
    try:
        raw = json.loads(path.read_text())
        choice = Choice(**raw)
    except (OSError, ValueError, TypeError):  # none yet, or unreadable: measured again
        return None
    libs = (choice.step_few, choice.step_many, choice.step_backward, choice.projection, choice.weight_grad)
    if choice.cpu != cpu_name() or not all(lib in LIBRARIES for lib in libs):
        return None
    return choice


def _write(path: Path, choice: Choice) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    try:
        tmp.write_text(json.dumps(asdict(choice), indent=1))
        os.replace(tmp, path)  # whole or not at all: another process may be reading it
    except OSError:
        tmp.unlink(missing_ok=True)  # a read-only cache: measured again next time, nothing lost


def measure(module, rounds: int = 7) -> Choice:
    """Time each library on each class of product, interleaved round by round (the machine's noise
    hits them alike); the median of the rounds decides. Once per machine."""
    gen = torch.Generator().manual_seed(0)
    H, E = 150, 50  # the default model's sizes

    def randn(*shape):
        return torch.randn(*shape, generator=gen)

    measured: dict[str, dict[str, float]] = {}

    w_hh, w_u, b_u, b = randn(4 * H, H) * 0.1, randn(H, H) * 0.1, randn(H), randn(4 * H)

    def forward(B: int, T: int, save: bool = False):
        proj0, zeros = randn(T, B, 4 * H), torch.zeros(B, H)
        return lambda: module.forward_dirs([proj0.clone()], [B] * T, [zeros], [zeros], [w_hh], [w_u], [b_u], [b], save)

    def backward(B: int, T: int):
        module.set_step_libraries([0, 0, 0])
        hist = [list(forward(B, T, True)()[0])]
        grads = [[randn(T, B, H), torch.zeros(0), torch.zeros(0)]]
        return lambda: module.backward_dirs(grads, [B] * T, [w_hh], [w_u], hist)

    def step_libraries():
        libs = ["blas"]
        if module.packing_available():
            libs.append("blas-packed")
        if module.onednn_available():
            libs.append("onednn")
        return libs

    def timed(cls: str, runs: dict) -> None:
        times: dict[str, list[float]] = {name: [] for name in runs}
        for _ in range(rounds):
            for name, (setup, run) in runs.items():
                setup()
                start = time.perf_counter()
                run()
                times[name].append(time.perf_counter() - start)
        measured[cls] = {name: statistics.median(ts) for name, ts in times.items()}

    def set_all(lib):
        return lambda: module.set_step_libraries([_STEP_CODES[lib]] * 3)

    back = backward(64, 50)
    timed("step_few", {lib: (set_all(lib), forward(1, 30)) for lib in step_libraries()})
    timed("step_many", {lib: (set_all(lib), forward(128, 24)) for lib in step_libraries()})  # a prediction batch
    timed("step_backward", {lib: (set_all(lib), back) for lib in step_libraries()})
    module.set_step_libraries([0, 0, 0])
    if module.onednn_available():
        x, w = randn(50 * 64, E), randn(4 * H, E)
        out = torch.empty(50 * 64, 4 * H)
        dpre, stm = randn(50 * 64, 4 * H), randn(50 * 64, H)
        grad = torch.empty(4 * H, H)
        nothing = lambda: None  # noqa: E731
        timed("projection", {"blas": (nothing, lambda: torch.mm(x, w.t(), out=out)),
                             "onednn": (nothing, lambda: module.onednn_mm(x, w.t(), out, False))})
        timed("weight_grad", {"blas": (nothing, lambda: torch.mm(dpre.t(), stm, out=grad)),
                              "onednn": (nothing, lambda: module.onednn_mm(dpre.t(), stm, grad, False))})

    def best(cls: str) -> str:
        if cls not in measured:
            return "blas"
        times = measured[cls]
        name = min(times, key=times.get)
        return name if times[name] < (1 - MARGIN) * times["blas"] else "blas"

    return Choice(best("step_few"), best("step_many"), best("step_backward"), best("projection"), best("weight_grad"),
                  cpu_name(),
                  {cls: {k: round(v, 7) for k, v in t.items()} for cls, t in measured.items()})


def mm(a: torch.Tensor, b: torch.Tensor, cls: str, module=None) -> torch.Tensor:
    """a @ b through the library chosen for `cls` ("projection" or "weight_grad"); no autograd."""
    if module is not None and getattr(_current, cls) == "onednn" and a.dtype == torch.float32 and not a.is_cuda:
        out = a.new_empty(a.shape[0], b.shape[1])
        module.onednn_mm(a, b, out, False)
        return out
    return a @ b


class Project(torch.autograd.Function):
    """x (N, E) @ weight^T (E, G) and its gradients, each through the projection's library."""

    @staticmethod
    def forward(ctx, x, weight, module):
        ctx.save_for_backward(x, weight)
        ctx.module = module
        return mm(x, weight.t(), "projection", module)

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        grad = grad.contiguous()
        dx = mm(grad, weight, "projection", ctx.module) if ctx.needs_input_grad[0] else None
        dw = mm(grad.t(), x, "weight_grad", ctx.module) if ctx.needs_input_grad[1] else None
        return dx, dw, None
