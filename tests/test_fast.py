"""The four-gate LSTM's fast paths (the compiled kernel and the Python loop) against the readable cell
loop: outputs, states and every gradient."""
import os
import shutil

import pytest
import torch

from reviewlstm import kernels
from reviewlstm.cells import LSTMState
from reviewlstm.layers import Recurrent

IMPLEMENTATIONS = ["kernel", "python"]


HAVE_COMPILER = shutil.which(os.environ.get("CXX", "c++")) is not None


def test_the_kernel_builds_where_there_is_a_compiler(compiled_kernel):
    """With a C++ compiler the kernel must build (a failure is a bug, not a reason to fall back
    quietly in CI); without one, the Python loop's tests still run and the kernel's skip, saying why."""
    if HAVE_COMPILER and kernels.enabled():
        assert compiled_kernel is not None, kernels.status()


def needs_kernel(use):
    if use == "kernel" and not HAVE_COMPILER:
        pytest.skip("no C++ compiler: the compiled kernel cannot be built here")


def pair(dtype, use="kernel", **kw):
    needs_kernel(use)
    fast = Recurrent("lstm", 6, 5, fast=use, **kw).to(dtype)
    slow = Recurrent("lstm", 6, 5, fast=False, **kw).to(dtype)
    slow.load_state_dict(fast.state_dict())
    return fast, slow


@pytest.mark.parametrize("use", IMPLEMENTATIONS)
@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-10), (torch.float32, 1e-5)])
@pytest.mark.parametrize("layers,bidirectional", [(1, False), (1, True), (2, True)])
@pytest.mark.parametrize("lengths", [[7, 7, 7, 7], [7, 5, 2, 1], [7, 2, 5, 1], [3, 7, 0, 7]])
def test_fast_matches_readable_outputs_and_gradients(use, dtype, tol, layers, bidirectional, lengths):
    fast, slow = pair(dtype, use, num_layers=layers, bidirectional=bidirectional)
    D = 2 if bidirectional else 1
    x = torch.randn(4, 7, 6, dtype=dtype)
    h0, c0 = torch.randn(layers * D, 4, 5, dtype=dtype), torch.randn(layers * D, 4, 5, dtype=dtype)
    lengths = torch.tensor(lengths)
    results = []
    for layer in (fast, slow):
        xs, hs, cs = (t.clone().requires_grad_(True) for t in (x, h0, c0))
        out, state = layer(xs, lengths, state=LSTMState(cs, hs))
        w_out, w_l, w_s = (torch.linspace(-1, 1, t.numel(), dtype=dtype).reshape(t.shape)
                           for t in (out, state.ltm, state.stm))
        loss = (out * w_out).sum() + (state.ltm * w_l).sum() + (state.stm * w_s).sum()
        grads = torch.autograd.grad(loss, [xs, hs, cs, *layer.parameters()])
        results.append((out, state.ltm, state.stm, grads))
    (fo, fl, fs, fg), (so, sl, ss, sg) = results
    torch.testing.assert_close(fo, so, rtol=0, atol=tol)
    torch.testing.assert_close(fl, sl, rtol=0, atol=tol)
    torch.testing.assert_close(fs, ss, rtol=0, atol=tol)
    for a, b in zip(fg, sg):
        torch.testing.assert_close(a, b, rtol=0, atol=tol)


@pytest.mark.parametrize("use", IMPLEMENTATIONS)
def test_fast_inference_without_autograd_matches(use):
    fast, slow = pair(torch.float32, use, bidirectional=True)
    x = torch.randn(5, 9, 6)
    lengths = torch.tensor([9, 1, 4, 9, 6])
    with torch.inference_mode():
        a, sa = fast(x, lengths)
        b, sb = slow(x, lengths)
    torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    torch.testing.assert_close(sa.ltm, sb.ltm, rtol=0, atol=1e-6)
    assert torch.all(a[1, 1:] == 0)


@pytest.mark.parametrize("use", IMPLEMENTATIONS)
def test_fast_path_gradcheck(use):
    needs_kernel(use)
    torch.manual_seed(3)
    layer = Recurrent("lstm", 3, 2, fast=use).double()
    x = torch.randn(3, 4, 3, dtype=torch.float64, requires_grad=True)
    lengths = torch.tensor([4, 2, 3])
    assert torch.autograd.gradcheck(lambda x, *p: layer(x, lengths)[0], (x, *layer.parameters()))


def test_kernel_at_model_size_matches_readable_loop_float32():
    """At the bundled model's shapes (E 50, H 150, a length-bucketed batch), where the vectorised
    tanh/exp of the compiled loop could drift: within 1e-5 of the readable loop, outputs and gradients."""
    needs_kernel("kernel")
    torch.manual_seed(0)
    fast = Recurrent("lstm", 50, 150, bidirectional=True, fast="kernel")
    slow = Recurrent("lstm", 50, 150, bidirectional=True, fast=False)
    slow.load_state_dict(fast.state_dict())
    x = torch.randn(32, 40, 50)
    lengths = torch.randint(1, 41, (32,))
    results = []
    for layer in (fast, slow):
        xs = x.clone().requires_grad_(True)
        out, state = layer(xs, lengths)
        loss = (out * torch.linspace(-1, 1, out.numel()).reshape(out.shape)).sum() + state.ltm.pow(2).sum()
        results.append((out, state.ltm, state.stm, *torch.autograd.grad(loss, [xs, *layer.parameters()])))
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_kernel_falls_back_when_switched_off(tmp_path):
    """REVIEWLSTM_KERNEL=off: no build, the Python loop runs, and the answer is the same."""
    needs_kernel("kernel")
    import os
    import subprocess
    import sys
    code = ("import torch; from reviewlstm import kernels; from reviewlstm.layers import Recurrent; "
            "torch.manual_seed(0); m = Recurrent('lstm', 4, 3); "
            "out = m(torch.ones(2, 5, 4), torch.tensor([5, 2]))[0]; "
            "print(kernels.status()); print(round(out.sum().item(), 5))")
    env = {**os.environ, "REVIEWLSTM_KERNEL": "off"}
    off = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    on = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert off.stdout.splitlines()[0].startswith("off")
    assert on.stdout.splitlines()[0].startswith("compiled")
    assert off.stdout.splitlines()[1] == on.stdout.splitlines()[1]


def test_failed_build_falls_back_with_one_line(tmp_path):
    """No working compiler: one line on stderr saying so, then the Python loop gives the same answer."""
    import os
    import subprocess
    import sys
    code = ("import torch; from reviewlstm.layers import Recurrent; torch.manual_seed(0); "
            "m = Recurrent('lstm', 4, 3); print(round(m(torch.ones(2, 5, 4), torch.tensor([5, 2]))[0].sum().item(), 5))")
    env = {**os.environ, "REVIEWLSTM_CACHE": str(tmp_path), "CXX": "/bin/false"}
    broken = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    good = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert broken.returncode == 0, broken.stderr
    assert broken.stdout == good.stdout
    notes = [line for line in broken.stderr.splitlines() if "fast kernel unavailable" in line]
    assert len(notes) == 1 and "Traceback" not in broken.stderr


@pytest.mark.slow  # a full compile of the serial build into an empty cache
def test_compiler_without_openmp_gets_the_serial_build(tmp_path):
    """A compiler that rejects -fopenmp (Apple's clang): the second build compiles, runs its work items
    one after another, and answers as the readable loop does."""
    import os
    import subprocess
    import sys
    needs_kernel("kernel")
    cxx = tmp_path / "cxx-without-openmp"
    cxx.write_text('#!/bin/sh\nfor a in "$@"; do [ "$a" = -fopenmp ] && { echo "unsupported option -fopenmp" >&2; '
                   f'exit 1; }}; done\nexec {shutil.which(os.environ.get("CXX", "c++"))} "$@"\n')
    cxx.chmod(0o755)
    code = ("import torch; from reviewlstm import kernels; from reviewlstm.layers import Recurrent; "
            "torch.manual_seed(0); f = Recurrent('lstm', 4, 3, bidirectional=True, fast='kernel'); "
            "s = Recurrent('lstm', 4, 3, bidirectional=True, fast=False); s.load_state_dict(f.state_dict()); "
            "x, n = torch.randn(20, 5, 4), torch.randint(0, 6, (20,)); "
            "print(kernels.load().side_by_side(), (f(x, n)[0] - s(x, n)[0]).abs().max().item() < 1e-6)")
    env = {**os.environ, "REVIEWLSTM_CACHE": str(tmp_path / "cache"), "CXX": str(cxx)}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["False", "True"], proc.stdout + proc.stderr
    assert "unavailable" not in proc.stderr


def test_inference_sees_weights_change_after_a_step():
    """The compiled loop keeps transposed weights between inference calls; an optimizer step or a
    load_state_dict must not leave it reading the old ones."""
    fast, slow = pair(torch.float32, "kernel")
    x, lengths = torch.randn(3, 6, 6), torch.tensor([6, 4, 1])
    with torch.no_grad():
        fast(x, lengths)                      # fills the cache
        for p in fast.parameters():
            p.mul_(1.5)                       # what an optimizer step does
        slow.load_state_dict(fast.state_dict())
        torch.testing.assert_close(fast(x, lengths)[0], slow(x, lengths)[0], rtol=0, atol=1e-6)
        other = Recurrent("lstm", 6, 5).state_dict()
        fast.load_state_dict(other)
        slow.load_state_dict(other)
        torch.testing.assert_close(fast(x, lengths)[0], slow(x, lengths)[0], rtol=0, atol=1e-6)


def test_quick_cli_jobs_do_not_build(tmp_path):
    """Rating one text with nothing cached: answered by the Python loop at once, no minute of compiling."""
    import os
    import subprocess
    import sys
    env = {**os.environ, "REVIEWLSTM_CACHE": str(tmp_path / "cache")}
    proc = subprocess.run([sys.executable, "-m", "reviewlstm.cli", "predict", "a gorgeous, witty, seductive movie."],
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "5" in proc.stdout and "compiling" not in proc.stderr
    assert not (tmp_path / "cache" / "kernels").exists()


@pytest.mark.parametrize("bidirectional", [False, True])
def test_kernel_splits_rows_across_threads_exactly(bidirectional):
    """With two threads, one direction and row splitting on, the compiled loop runs the batch as two
    chunks of rows side by side (split by work, rows sorted longest first): the same numbers as the
    readable loop."""
    needs_kernel("kernel")
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    assert kernels.load().side_by_side(), "built without OpenMP: work items would run one after another"
    kernels.load().set_split_rows(True)  # the default
    try:
        torch.manual_seed(1)
        fast = Recurrent("lstm", 6, 5, bidirectional=bidirectional, fast="kernel").double()
        slow = Recurrent("lstm", 6, 5, bidirectional=bidirectional, fast=False).double()
        slow.load_state_dict(fast.state_dict())
        x = torch.randn(40, 12, 6, dtype=torch.float64)
        lengths = torch.randint(0, 13, (40,))
        results = []
        for layer in (fast, slow):
            xs = x.clone().requires_grad_(True)
            out, state = layer(xs, lengths)
            loss = (out * torch.linspace(-1, 1, out.numel(), dtype=torch.float64).reshape(out.shape)).sum() \
                + state.ltm.sum() + state.stm.pow(2).sum()
            results.append((out, state.ltm, state.stm, *torch.autograd.grad(loss, [xs, *layer.parameters()])))
        for a, b in zip(*results):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-10)
        with torch.inference_mode():
            torch.testing.assert_close(fast(x, lengths)[0], slow(x, lengths)[0], rtol=0, atol=1e-10)
    finally:
        torch.set_num_threads(threads)
        kernels.load().set_split_rows(True)


def test_inference_after_fused_optimizer_steps_reads_the_new_weights():
    """Regression: a fused AdamW step changes weights without bumping their version; inference
    between steps (the dev evaluations of training) must still read the current weights."""
    fast, slow = pair(torch.float32, "kernel")
    x, lengths = torch.randn(3, 6, 6), torch.tensor([6, 4, 1])
    opt = torch.optim.AdamW(fast.parameters(), lr=0.1, fused=True)
    for _ in range(3):
        with torch.no_grad():
            fast(x, lengths)  # an evaluation between steps
        fast(x, lengths)[0].sum().backward()
        opt.step()
        opt.zero_grad()
    slow.load_state_dict(fast.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(fast(x, lengths)[0], slow(x, lengths)[0], rtol=0, atol=1e-6)


def test_unknown_fast_path_is_refused_in_one_line():
    with pytest.raises(ValueError, match="fast must be True, False, 'kernel', 'triton' or 'python', got 'tritn'"):
        Recurrent("lstm", 3, 4, fast="tritn")
