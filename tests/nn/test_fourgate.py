"""Every backend of the four-gate fast path (reviewlstm.nn.fourgate) against the readable cell loop:
outputs, states and every gradient, padded batches, both directions, float64 and float32.

The suite is parametrized over the backends this machine can run (`AVAILABLE`): the Python loop
always, the compiled loop where there is a C++ compiler, the Triton kernels on a CUDA GPU or, without
one, in Triton's interpreter (conftest sets TRITON_INTERPRET=1 before Triton is imported). A new
backend gets every check by being listed here.
"""
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from reviewlstm.nn.cells import LSTMState
from reviewlstm.nn.fourgate import compiled, triton_loop
from reviewlstm.nn.fourgate.triton_loop import TritonSettings
from reviewlstm.nn.layers import Recurrent

pytestmark = pytest.mark.usefixtures("compiled_kernel")  # runs models: the compiled loop built first

CUDA = torch.cuda.is_available()
HAVE_COMPILER = shutil.which(os.environ.get("CXX", "c++")) is not None
# Triton publishes wheels for Linux x86_64 only (the test extras install it there)
HAVE_TRITON = triton_loop.triton is not None and (CUDA or (sys.platform == "linux" and platform.machine() == "x86_64"))
AVAILABLE = ["python"] + (["compiled"] if HAVE_COMPILER and compiled.enabled() else []) + (["triton"] if HAVE_TRITON else [])
# Triton: more than one block of units and not a multiple of one, so every masked edge is run
HIDDEN = {"python": 5, "compiled": 5, "triton": 37}
DEVICE = {"python": "cpu", "compiled": "cpu", "triton": "cuda" if CUDA else "cpu"}


def test_the_kernel_builds_where_there_is_a_compiler(compiled_kernel):
    """With a C++ compiler the kernel must build (a failure is a bug, not a reason to fall back
    quietly in CI); without one, the Python loop's tests still run and the kernel's are not listed."""
    if HAVE_COMPILER and compiled.enabled():
        assert compiled_kernel is not None, compiled.status()
    if sys.platform == "linux" and platform.machine() == "x86_64":
        assert HAVE_TRITON, "the test extras install Triton here"


def pair(backend, dtype, hidden=None, **kw):
    """A fast layer on `backend` and a readable one with the same weights, on the backend's device."""
    H = hidden or HIDDEN[backend]
    fast = Recurrent("lstm", 6, H, backend=backend, **kw).to(dtype)
    slow = Recurrent("lstm", 6, H, backend="readable", **kw).to(dtype)
    slow.load_state_dict(fast.state_dict())
    return fast.to(DEVICE[backend]), slow.to(DEVICE[backend])


def outputs_and_gradients(layer, x, lengths, state=None):
    """Outputs, final ltm and stm, and the gradients of a loss that weighs every one of them."""
    xs = x.clone().requires_grad_(True)
    leaves = [xs]
    if state is not None:
        state = LSTMState(*(s.clone().requires_grad_(True) for s in state))
        leaves += [state.ltm, state.stm]
    out, final = layer(xs, lengths, state=state)
    w_out, w_l, w_s = (torch.linspace(-1, 1, t.numel(), dtype=t.dtype, device=t.device).reshape(t.shape)
                       for t in (out, final.ltm, final.stm))
    loss = (out * w_out).sum() + (final.ltm * w_l).sum() + (final.stm * w_s).sum()
    return [out, final.ltm, final.stm, *torch.autograd.grad(loss, [*leaves, *layer.parameters()])]


def assert_all_close(got, want, tol):
    assert len(got) == len(want)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=0, atol=tol)


def _grid():
    for backend in AVAILABLE:
        for layers, bidirectional in [(1, False), (1, True), (2, True)]:
            # two layers in Triton's interpreter would add minutes and no line of the kernels
            if backend == "triton" and layers == 2 and not CUDA:
                continue
            yield backend, layers, bidirectional


@pytest.mark.parametrize("backend,layers,bidirectional", list(_grid()))
@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-10), (torch.float32, 1e-5)])
@pytest.mark.parametrize("lengths", [[7, 7, 7, 7], [7, 5, 2, 1], [7, 2, 5, 1], [3, 7, 0, 7]])
def test_backend_matches_readable_outputs_and_gradients(backend, layers, bidirectional, dtype, tol, lengths):
    fast, slow = pair(backend, dtype, num_layers=layers, bidirectional=bidirectional)
    D, H, dev = 2 if bidirectional else 1, fast.hidden_size, DEVICE[backend]
    x = torch.randn(4, 7, 6, dtype=dtype, device=dev)
    state = LSTMState(*(torch.randn(layers * D, 4, H, dtype=dtype, device=dev) for _ in range(2)))
    n = torch.tensor(lengths, device=dev)
    # float32 gradients sum many products: Triton's tl.dot accumulates in another order
    grad_tol = tol * 10 if backend == "triton" else tol
    got, want = outputs_and_gradients(fast, x, n, state), outputs_and_gradients(slow, x, n, state)
    assert_all_close(got[:3], want[:3], tol)
    assert_all_close(got[3:], want[3:], grad_tol)


@pytest.mark.parametrize("backend", AVAILABLE)
def test_backend_inference_without_autograd_matches(backend):
    # 37 rows: for Triton three row blocks of 16, the last one partly empty; nothing is kept for backward
    fast, slow = pair(backend, torch.float64, bidirectional=True)
    dev = DEVICE[backend]
    x = torch.randn(37, 9, 6, dtype=torch.float64, device=dev)
    n = torch.randint(0, 10, (37,), device=dev)
    with torch.inference_mode():
        (a, sa), (b, sb) = fast(x, n), slow(x, n)
    for got, want in ((a, b), (sa.ltm, sb.ltm), (sa.stm, sb.stm)):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-10)
    assert torch.all(a[n == 0] == 0)


@pytest.mark.parametrize("backend", AVAILABLE)
def test_backend_gradcheck(backend):
    """Finite differences in float64 (float32's rounding would drown the 1e-6 steps) against the
    backend's own backward, through a padded batch. In Triton's interpreter every kernel launch is
    Python, and a full gradcheck (two launches per input element) is slow: there it checks the
    gradient along random directions of inputs and outputs (gradcheck's fast mode), which a wrong
    backward fails just the same."""
    torch.manual_seed(3)
    layer = Recurrent("lstm", 3, 2, backend=backend).double().to(DEVICE[backend])
    x = torch.randn(3, 4, 3, dtype=torch.float64, device=DEVICE[backend], requires_grad=True)
    n = torch.tensor([4, 2, 3], device=DEVICE[backend])
    interpreted = backend == "triton" and not CUDA
    assert torch.autograd.gradcheck(lambda x, *p: layer(x, n)[0], (x, *layer.parameters()), fast_mode=interpreted)


@pytest.mark.parametrize("backend, lib", [(b, lib) for b in AVAILABLE if DEVICE[b] == "cpu" and b != "triton"
                                          for lib in (["blas", "blas-packed", "onednn"] if b == "compiled" else [None])])
def test_backend_at_model_size_matches_readable_loop_float32(backend, lib, request):
    """At the bundled model's shapes (E 50, H 150, a length-bucketed batch), where the vectorised
    tanh/exp of the compiled loop could drift, with each matrix library a machine may pick. Both
    float32 paths are measured against the readable loop in float64: a weight gradient sums 1,280
    (row, step) terms of up to ~70 in an order the library picks, so the two float32 answers differ
    by their rounding, not by a rule; each must be within 1e-5 of the tensor's scale of the exact
    answer (rounding leaves ~1e-6)."""
    if lib is not None:
        request.getfixturevalue("product_library")(lib)
    torch.manual_seed(0)
    fast = Recurrent("lstm", 50, 150, bidirectional=True, backend=backend)
    slow = Recurrent("lstm", 50, 150, bidirectional=True, backend="readable")
    exact = Recurrent("lstm", 50, 150, bidirectional=True, backend="readable").double()
    slow.load_state_dict(fast.state_dict())
    exact.load_state_dict(fast.state_dict())
    x = torch.randn(32, 40, 50)
    n = torch.randint(1, 41, (32,))
    want = outputs_and_gradients(exact, x.double(), n)
    for layer in (fast, slow):
        for got, ref in zip(outputs_and_gradients(layer, x, n), want):
            scale = max(ref.abs().max().item(), 1.0)
            torch.testing.assert_close(got.double(), ref, rtol=0, atol=1e-5 * scale)


@pytest.mark.parametrize("backend", [b for b in AVAILABLE if b != "triton"])
def test_inference_after_fused_optimizer_steps_reads_the_new_weights(backend):
    """A fused AdamW step changes weights without bumping their version; inference between steps (the
    dev checks of training) and after a load_state_dict must read the current weights."""
    fast, slow = pair(backend, torch.float32)
    x, n = torch.randn(3, 6, 6), torch.tensor([6, 4, 1])
    opt = torch.optim.AdamW(fast.parameters(), lr=0.1, fused=True)
    for _ in range(3):
        with torch.no_grad():
            fast(x, n)  # a dev check between steps
        fast(x, n)[0].sum().backward()
        opt.step()
        opt.zero_grad()
    slow.load_state_dict(fast.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(fast(x, n)[0], slow(x, n)[0], rtol=0, atol=1e-6)
        other = Recurrent("lstm", 6, 5).state_dict()
        fast.load_state_dict(other)
        slow.load_state_dict(other)
        torch.testing.assert_close(fast(x, n)[0], slow(x, n)[0], rtol=0, atol=1e-6)


def test_unknown_backend_is_refused_in_one_line():
    with pytest.raises(ValueError, match="backend must be one of readable, auto, compiled, triton, python; got 'tritn'"):
        Recurrent("lstm", 3, 4, backend="tritn")


# ---- the compiled backend: its build and its threads ---------------------------------------------

def needs_compiler():
    if not HAVE_COMPILER:
        pytest.skip("no C++ compiler: the compiled backend cannot be built here")


def test_compiled_falls_back_when_switched_off():
    """REVIEWLSTM_KERNEL=off: no build, the Python loop runs, and the answer is the same."""
    needs_compiler()
    code = ("import torch; from reviewlstm.nn.fourgate import compiled, choose; from reviewlstm.nn.layers import Recurrent; "
            "torch.manual_seed(0); m = Recurrent('lstm', 4, 3); "
            "out = m(torch.ones(2, 5, 4), torch.tensor([5, 2]))[0]; "
            "print(compiled.status()); print(choose(out)[0]); print(round(out.sum().item(), 5))")
    off = subprocess.run([sys.executable, "-c", code], env={**os.environ, "REVIEWLSTM_KERNEL": "off"},
                         capture_output=True, text=True, check=True).stdout.splitlines()
    on = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.splitlines()
    assert off[0].startswith("off") and off[1] == "python"
    assert on[0].startswith("compiled") and on[1] == "compiled"
    assert off[2] == on[2]


def test_failed_build_falls_back_with_one_line(tmp_path):
    """No working compiler: one line on stderr saying so, then the Python loop gives the same answer."""
    code = ("import torch; from reviewlstm.nn.layers import Recurrent; torch.manual_seed(0); "
            "m = Recurrent('lstm', 4, 3); print(round(m(torch.ones(2, 5, 4), torch.tensor([5, 2]))[0].sum().item(), 5))")
    env = {**os.environ, "REVIEWLSTM_CACHE": str(tmp_path), "CXX": "/bin/false"}
    broken = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    good = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert broken.returncode == 0, broken.stderr
    assert broken.stdout == good.stdout
    notes = [line for line in broken.stderr.splitlines() if "fast kernel unavailable" in line]
    assert len(notes) == 1 and "Traceback" not in broken.stderr


def test_a_lock_left_by_a_killed_build_never_hangs(tmp_path):
    """torch's build lock is a bare file; a build killed mid-way leaves it, and torch's loader waits
    on it forever. A cached build loads without it; a build past a lock too old to be live clears it."""
    needs_compiler()
    assert compiled.load() is not None, compiled.error()  # the suite's cached build (built here if not yet)
    name = Path(compiled.load().__file__).parent.name
    cache = tmp_path / "cache" / "kernels" / compiled.cache_dir().name
    shutil.copytree(compiled.cache_dir() / name, cache / name)
    (cache / name / "lock").touch()  # as fresh as a live build's: a cached module still loads
    code = "from reviewlstm.nn.fourgate import compiled; print(compiled.load() is not None, compiled.status())"
    env = {**os.environ, "REVIEWLSTM_CACHE": str(tmp_path / "cache")}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.startswith("True compiled"), proc.stdout + proc.stderr
    # nothing cached, a lock an hour old, and no working compiler: the lock goes, the build fails
    # fast with its one line, and the Python loop answers
    empty = tmp_path / "empty"
    for build in compiled.BUILDS:
        lock = empty / "kernels" / compiled.cache_dir().name / compiled._name(*build) / "lock"
        lock.parent.mkdir(parents=True)
        lock.touch()
        os.utime(lock, (time.time() - 3600, time.time() - 3600))
    env = {**os.environ, "REVIEWLSTM_CACHE": str(empty), "CXX": "/bin/false"}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.startswith("False"), proc.stdout + proc.stderr
    assert "left by a build of the kernel that was stopped" in proc.stderr
    assert "fast kernel unavailable" in proc.stderr and "Traceback" not in proc.stderr


def test_a_named_backend_that_cannot_run_is_an_error(monkeypatch):
    # refused before any build is tried, so this holds with or without a compiler
    layer = Recurrent("lstm", 3, 4, backend="compiled").to(torch.float16)
    with pytest.raises(RuntimeError, match="compiled backend runs on CPU float32/float64"):
        layer(torch.randn(2, 3, 3, dtype=torch.float16))
    if HAVE_TRITON and not CUDA:
        monkeypatch.setenv("TRITON_INTERPRET", "0")
        assert not triton_loop.available(torch.zeros(1))
        with pytest.raises(RuntimeError, match="Triton backend needs"):
            Recurrent("lstm", 3, 4, backend="triton")(torch.randn(2, 3, 3))


@pytest.mark.slow  # the suite's one extra full compile: the serial build, into an empty cache
def test_a_first_run_without_openmp_builds_the_serial_loop_and_times_it_apart(tiny_model, tmp_path):
    """A fresh machine whose compiler rejects -fopenmp (Apple's clang). Scoring a file there builds
    the second, serial kernel and says what compiling cost apart from the rating itself; the build
    then runs its work items one after another and answers as the readable loop does."""
    needs_compiler()
    cxx = tmp_path / "cxx-without-openmp"
    cxx.write_text('#!/bin/sh\nfor a in "$@"; do [ "$a" = -fopenmp ] && { echo "unsupported option -fopenmp" >&2; '
                   f'exit 1; }}; done\nexec {shutil.which(os.environ.get("CXX", "c++"))} "$@"\n')
    cxx.chmod(0o755)
    # nothing built yet; a file of any size builds first (REVIEWLSTM_BUILD_ROWS 0: as a file past the break-even)
    env = {**os.environ, "REVIEWLSTM_CACHE": str(tmp_path / "cache"), "CXX": str(cxx), "REVIEWLSTM_BUILD_ROWS": "0"}
    src = tmp_path / "in.csv"
    src.write_text("text\n" + "good film\n" * 50)
    proc = subprocess.run([sys.executable, "-m", "reviewlstm.apps.cli", "predict", "--model", str(tiny_model), "--input",
                           str(src), "--output", str(tmp_path / "o.csv"), "--no-progress"],
                          capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stderr
    assert "compiling the kernel took" in proc.stdout, proc.stdout
    rated = float(proc.stdout.split("rated 50 in ")[1].split("s")[0])
    built = float(proc.stdout.split("compiling the kernel took ")[1].split("s")[0])
    assert built > 5 and rated < built
    code = ("import torch; from reviewlstm.nn.fourgate import compiled; from reviewlstm.nn.layers import Recurrent; "
            "torch.manual_seed(0); f = Recurrent('lstm', 4, 3, bidirectional=True, backend='compiled'); "
            "s = Recurrent('lstm', 4, 3, bidirectional=True, backend='readable'); s.load_state_dict(f.state_dict()); "
            "x, n = torch.randn(20, 5, 4), torch.randint(0, 6, (20,)); "
            "print(compiled.load().side_by_side(), (f(x, n)[0] - s(x, n)[0]).abs().max().item() < 1e-6)")
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["False", "True"], proc.stdout + proc.stderr
    assert "unavailable" not in proc.stderr and "compiling" not in proc.stderr  # the first run's build, reused


def test_quick_cli_jobs_do_not_build(tmp_path):
    """Rating one text with nothing cached: answered by the Python loop at once, no minute of compiling."""
    env = {**os.environ, "REVIEWLSTM_CACHE": str(tmp_path / "cache")}
    proc = subprocess.run([sys.executable, "-m", "reviewlstm.apps.cli", "predict", "a gorgeous, witty, seductive movie."],
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "5" in proc.stdout and "compiling" not in proc.stderr
    assert not (tmp_path / "cache" / "kernels").exists()


def test_a_small_file_is_scored_without_waiting_for_a_build(tmp_path):
    """A 31-row file with nothing cached: the Python loop scores it at once and says why; the build
    is left for a job worth it (BUILD_ROWS) or `build-kernel`."""
    env = {**os.environ, "REVIEWLSTM_CACHE": str(tmp_path / "cache")}
    src = tmp_path / "in.csv"
    src.write_text("text\n" + "".join(f"review number {i} was fine\n" for i in range(31)))
    proc = subprocess.run([sys.executable, "-m", "reviewlstm.apps.cli", "predict", "--input", str(src), "--output",
                           str(tmp_path / "out.csv"), "--no-progress"], env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "31 rows: scored with the Python loop" in proc.stderr and "compiling" not in proc.stderr
    assert len((tmp_path / "out.csv").read_text().splitlines()) == 32
    assert not list((tmp_path / "cache").rglob("*.so"))


@pytest.mark.parametrize("bidirectional", [False, True])
def test_compiled_splits_rows_across_threads_exactly(bidirectional):
    """With two threads and one direction, the compiled loop runs the batch as two chunks of rows
    side by side (split by work, rows sorted longest first): the same numbers as the readable loop."""
    needs_compiler()
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        assert compiled.load().side_by_side(), "built without OpenMP: work items would run one after another"
        torch.manual_seed(1)
        fast, slow = pair("compiled", torch.float64, bidirectional=bidirectional)
        x = torch.randn(40, 12, 6, dtype=torch.float64)
        n = torch.randint(0, 13, (40,))
        assert_all_close(outputs_and_gradients(fast, x, n), outputs_and_gradients(slow, x, n), 1e-10)
        with torch.inference_mode():
            torch.testing.assert_close(fast(x, n)[0], slow(x, n)[0], rtol=0, atol=1e-10)
    finally:
        torch.set_num_threads(threads)


@pytest.fixture
def product_library():
    """Set the compiled loop's matrix library for one test, and put back the measured choice after."""
    needs_compiler()
    from reviewlstm.nn.fourgate import products
    module, before = compiled.load(), products.current()
    build = Path(module.__file__).parent

    def use(lib):
        return products.apply(module, build, forced=lib)
    yield use
    products.use(module, before)


@pytest.mark.parametrize("lib", ["blas", "blas-packed", "onednn"])
@pytest.mark.parametrize("rows", [3, 40])  # below and above the few-rows cut (16), where the choice may differ
def test_each_matrix_library_matches_the_readable_loop_float32(product_library, lib, rows):
    """Whichever library a machine's measurement picks (MKL as is, MKL with packed weights, oneDNN),
    for the per-step products and the products over all steps: the readable loop's numbers within 1e-5."""
    choice = product_library(lib)
    module = compiled.load()
    if lib == "blas-packed":
        assert (choice.step_many, choice.step_backward) == (lib,) * 2 or not module.packing_available()
    if lib == "onednn":
        assert (choice.step_many, choice.step_backward, choice.projection, choice.weight_grad) == (lib,) * 4 \
            or not module.onednn_available()
    torch.manual_seed(rows)
    fast = Recurrent("lstm", 20, 24, bidirectional=True, backend="compiled")
    slow = Recurrent("lstm", 20, 24, bidirectional=True, backend="readable")
    slow.load_state_dict(fast.state_dict())
    x = torch.randn(rows, 9, 20)
    n = torch.randint(1, 10, (rows,))
    for a, b in zip(outputs_and_gradients(fast, x, n), outputs_and_gradients(slow, x, n)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    with torch.inference_mode():
        torch.testing.assert_close(fast(x, n)[0], slow(x, n)[0], rtol=1e-5, atol=1e-5)


def test_the_matrix_libraries_are_measured_once_and_read_back(product_library, tmp_path):
    """No choice cached: measured and written beside the build; cached: read, not measured again (an
    edited file is believed); unreadable or for another CPU: measured again. Never per call."""
    from reviewlstm.nn.fourgate import products
    module = compiled.load()
    first = products.apply(module, tmp_path)
    path = products.choice_path(tmp_path)
    saved = json.loads(path.read_text())
    assert saved["cpu"] == products.cpu_name() and set(saved["measured"]) >= {"step_few", "step_many", "step_backward"}
    assert all(t > 0 for cls in saved["measured"].values() for t in cls.values())
    assert first.step_many == saved["step_many"]
    saved["step_many"], saved["measured"] = "blas-packed", {"edited": {"blas": 1.0}}
    path.write_text(json.dumps(saved))
    again = products.apply(module, tmp_path)
    assert again.measured == {"edited": {"blas": 1.0}}  # read back, not measured
    assert again.step_many == ("blas-packed" if module.packing_available() else "blas")
    path.write_text("{ not json")
    assert "step_few" in products.apply(module, tmp_path).measured  # measured afresh
    saved["cpu"] = "another CPU"
    path.write_text(json.dumps(saved))
    assert "step_few" in products.apply(module, tmp_path).measured
    with pytest.raises(ValueError, match="REVIEWLSTM_PRODUCTS"):
        products.apply(module, tmp_path, forced="cublas")


# ---- the Triton backend: which kernels run, and when Triton is imported --------------------------

def needs_triton():
    if not HAVE_TRITON:
        pytest.skip("Triton runs on Linux x86_64 or a CUDA GPU only")


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-10), (torch.float32, 1e-5)])
def test_triton_split_and_row_block_kernels_both_match_readable(dtype, tol):
    """The split kernels (a step's units across programs, a barrier per phase) and the row-block ones,
    forward and backward, through the same shared phase helpers. On a GPU the split launch has two
    unit blocks (H 37, 32 units each), so programs wait on each other; in the interpreter, which runs
    programs in turn, one unit block of 64: every line of the kernels but the waiting."""
    needs_triton()
    torch.manual_seed(3)
    dev = DEVICE["triton"]
    x = torch.randn(37, 9, 6, dtype=dtype, device=dev)
    n = torch.randint(0, 10, (37,), device=dev)
    split = TritonSettings(split_units=32 if CUDA else 64)
    for settings in (split, TritonSettings(split=False)):
        fast, slow = pair("triton", dtype, bidirectional=True)
        fast.triton_settings = settings
        assert (triton_loop._split_units(x, 37, 37, 2, settings) is not None) == settings.split
        assert_all_close(outputs_and_gradients(fast, x, n), outputs_and_gradients(slow, x, n), tol * 10)


def test_triton_split_units_fit_the_machine():
    # units a program where the launch fits; twice as many where the batch needs more programs;
    # the row-block kernels where nothing fits (or, in the interpreter, where programs would wait)
    needs_triton()
    x = torch.zeros(1, device=DEVICE["triton"])
    s = triton_loop.DEFAULT
    if CUDA:
        sms = torch.cuda.get_device_properties(x.device).multi_processor_count
        assert triton_loop._split_units(x, 64, 150, 2, s) == 16 or 10 * 4 * 2 > sms
        assert triton_loop._split_units(x, 16 * sms, 150, 1, s) is None
    else:
        assert triton_loop._split_units(x, 64, 16, 2, s) == 16 and triton_loop._split_units(x, 64, 17, 2, s) is None
    assert triton_loop._split_units(x, 64, 16, 2, TritonSettings(split=False)) is None


def test_cpu_paths_never_import_triton():
    # importing Triton costs about as much as rating a review: a CPU prediction must not pay it
    code = ("import sys, torch; from reviewlstm.nn.layers import Recurrent; "
            "Recurrent('lstm', 3, 4, bidirectional=True)(torch.randn(2, 5, 3), torch.tensor([5, 2])); "
            "print('triton' in sys.modules)")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "False", out.stderr


@pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU: the auto choice is made on CUDA tensors only")
def test_cuda_auto_choice_and_its_switch(monkeypatch):
    from reviewlstm.nn.fourgate import choose
    x = torch.zeros(1, device="cuda")
    assert choose(x)[0] == "triton" and choose(x, "python")[0] == "python"
    monkeypatch.setenv("REVIEWLSTM_TRITON", "off")
    assert choose(x)[0] == "python" and choose(x, "triton")[0] == "triton"
