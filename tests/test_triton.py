"""The four-gate LSTM's Triton kernel (triton_lstm.py) against the readable cell loop.

On a machine with a CUDA GPU the kernels are compiled and run there; without one, the same kernels
run in Triton's interpreter on CPU tensors (TRITON_INTERPRET=1, set before Triton is first imported),
so the kernel's logic is held to the oracle on every machine."""
import os
import subprocess
import sys

import pytest
import torch

CUDA = torch.cuda.is_available()
if not CUDA:
    os.environ.setdefault("TRITON_INTERPRET", "1")

import platform  # noqa: E402

if not (sys.platform == "linux" and platform.machine() == "x86_64") and not CUDA:
    # Triton publishes wheels for Linux x86_64 only (the test extras install it there): elsewhere,
    # without a GPU, there is nothing to run its kernels on
    pytest.skip("Triton runs on Linux x86_64 or a CUDA GPU only", allow_module_level=True)
import triton  # noqa: E402,F401

from reviewlstm import triton_lstm  # noqa: E402
from reviewlstm.cells import LSTMState  # noqa: E402
from reviewlstm.layers import Recurrent  # noqa: E402

DEVICE = "cuda" if CUDA else "cpu"
H = 37  # more than one BH block, not a multiple of it: exercises the masked edges of every product


def pair(dtype, use="triton", **kw):
    fast = Recurrent("lstm", 6, H, fast=use, **kw).to(dtype)
    slow = Recurrent("lstm", 6, H, fast=False, **kw).to(dtype)
    slow.load_state_dict(fast.state_dict())
    return fast.to(DEVICE), slow.to(DEVICE)


def run(layer, x, h0, c0, lengths):
    xs, hs, cs = (t.clone().requires_grad_(True) for t in (x, h0, c0))
    out, state = layer(xs, lengths, state=LSTMState(cs, hs))
    w_out, w_l, w_s = (torch.linspace(-1, 1, t.numel(), dtype=t.dtype, device=t.device).reshape(t.shape)
                       for t in (out, state.ltm, state.stm))
    loss = (out * w_out).sum() + (state.ltm * w_l).sum() + (state.stm * w_s).sum()
    grads = torch.autograd.grad(loss, [xs, hs, cs, *layer.parameters()])
    return out, state.ltm, state.stm, grads


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-10), (torch.float32, 1e-5)])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("lengths", [[7, 7, 7, 7, 7], [7, 5, 2, 1, 0], [3, 7, 0, 7, 4]])
def test_triton_matches_readable_outputs_and_gradients(dtype, tol, bidirectional, lengths):
    torch.manual_seed(0)
    fast, slow = pair(dtype, bidirectional=bidirectional)
    D = 2 if bidirectional else 1
    x = torch.randn(5, 7, 6, dtype=dtype, device=DEVICE)
    h0, c0 = (torch.randn(D, 5, H, dtype=dtype, device=DEVICE) for _ in range(2))
    lengths = torch.tensor(lengths, device=DEVICE)
    (fo, fl, fs, fg), (so, sl, ss, sg) = run(fast, x, h0, c0, lengths), run(slow, x, h0, c0, lengths)
    torch.testing.assert_close(fo, so, rtol=0, atol=tol)
    torch.testing.assert_close(fl, sl, rtol=0, atol=tol)
    torch.testing.assert_close(fs, ss, rtol=0, atol=tol)
    for a, b in zip(fg, sg):
        torch.testing.assert_close(a, b, rtol=0, atol=tol * 10)


def test_triton_more_rows_than_a_program_and_inference_without_autograd():
    # 37 rows: three row blocks of 16, the last one partly empty; no autograd: nothing is saved
    torch.manual_seed(1)
    fast, slow = pair(torch.float64, bidirectional=True)
    x = torch.randn(37, 4, 6, dtype=torch.float64, device=DEVICE)
    lengths = torch.randint(0, 5, (37,), device=DEVICE)
    with torch.no_grad():
        fo, fstate = fast(x, lengths)
        so, sstate = slow(x, lengths)
    torch.testing.assert_close(fo, so, rtol=0, atol=1e-10)
    torch.testing.assert_close(fstate.ltm, sstate.ltm, rtol=0, atol=1e-10)
    torch.testing.assert_close(fstate.stm, sstate.stm, rtol=0, atol=1e-10)


@pytest.mark.slow  # half a minute in Triton's interpreter
def test_triton_gradcheck_float64():
    # finite differences in float64 (float32's rounding would drown the 1e-6 steps) against the
    # kernel's own backward, through a padded batch
    torch.manual_seed(2)
    layer = Recurrent("lstm", 3, 2, fast="triton").double().to(DEVICE)
    x = torch.randn(3, 4, 3, dtype=torch.float64, device=DEVICE, requires_grad=True)
    lengths = torch.tensor([4, 2, 3], device=DEVICE)
    assert torch.autograd.gradcheck(lambda x, *p: layer(x, lengths)[0], (x, *layer.parameters()))


def test_triton_is_refused_where_it_cannot_run():
    if CUDA:
        pytest.skip("on a GPU machine Triton runs: nothing to refuse")
    os.environ["TRITON_INTERPRET"] = "0"
    try:
        assert not triton_lstm.available(torch.zeros(1))
        layer = Recurrent("lstm", 3, 4, fast="triton")
        with pytest.raises(RuntimeError, match="Triton kernel needs"):
            layer(torch.randn(2, 3, 3))
    finally:
        os.environ["TRITON_INTERPRET"] = "1"


def test_cpu_paths_never_import_triton():
    # importing Triton costs about a second: a CPU prediction must not pay it
    code = ("import sys, torch; from reviewlstm.layers import Recurrent; "
            "Recurrent('lstm', 3, 4, bidirectional=True)(torch.randn(2, 5, 3), torch.tensor([5, 2])); "
            "print('triton' in sys.modules)")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "False", out.stderr


@pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU: the default choice is made on CUDA tensors only")
def test_cuda_default_and_its_switch():
    from reviewlstm.fast import _triton_for
    x = torch.zeros(1, device="cuda")
    assert _triton_for(x, True) and not _triton_for(x, "python")
    os.environ["REVIEWLSTM_TRITON"] = "off"
    try:
        assert not _triton_for(x, True) and _triton_for(x, "triton")
    finally:
        del os.environ["REVIEWLSTM_TRITON"]


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-10), (torch.float32, 1e-5)])
def test_split_kernels_match_readable(dtype, tol):
    # hidden units split across programs, a barrier across them per phase, forward and backward. On a
    # GPU: two unit blocks (H 37, 32 units each), so programs wait on each other. In the interpreter,
    # which runs programs in turn, one unit block (64 units): every line of the kernels but the waiting.
    torch.manual_seed(3)
    fast, slow = pair(dtype, bidirectional=True)
    x = torch.randn(37, 9, 6, dtype=dtype, device=DEVICE)
    lengths = torch.randint(0, 10, (37,), device=DEVICE)
    saved = triton_lstm.SPLIT, triton_lstm.SPLIT_BH
    triton_lstm.SPLIT, triton_lstm.SPLIT_BH = True, (32 if CUDA else 64)
    try:
        assert triton_lstm._split_units(x, 37, H, 2) == triton_lstm.SPLIT_BH
        (fo, fl, fs, fg), (so, sl, ss, sg) = (run(layer, x, *(torch.zeros(2, 37, H, dtype=dtype, device=DEVICE)
                                                              for _ in range(2)), lengths) for layer in (fast, slow))
    finally:
        triton_lstm.SPLIT, triton_lstm.SPLIT_BH = saved
    for a, b in [(fo, so), (fl, sl), (fs, ss), *zip(fg, sg)]:
        torch.testing.assert_close(a, b, rtol=0, atol=tol * 10)


def test_split_units_fit_the_machine():
    # 16 units a program where the launch fits; twice as many where the batch needs more programs;
    # the row-block kernels where nothing fits (or, in the interpreter, where programs would wait)
    x = torch.zeros(1, device=DEVICE)
    if CUDA:
        sms = torch.cuda.get_device_properties(x.device).multi_processor_count
        assert triton_lstm._split_units(x, 64, 150, 2) == 16 or 10 * 4 * 2 > sms
        assert triton_lstm._split_units(x, 16 * sms, 150, 1) is None
    else:
        assert triton_lstm._split_units(x, 64, 16, 2) == 16 and triton_lstm._split_units(x, 64, 17, 2) is None
