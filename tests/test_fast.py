"""The four-gate LSTM's fast path against the readable cell loop: outputs, states and every gradient."""
import pytest
import torch

from reviewlstm.cells import LSTMState
from reviewlstm.layers import Recurrent


def pair(dtype, **kw):
    fast = Recurrent("lstm", 6, 5, fast=True, **kw).to(dtype)
    slow = Recurrent("lstm", 6, 5, fast=False, **kw).to(dtype)
    slow.load_state_dict(fast.state_dict())
    return fast, slow


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-10), (torch.float32, 1e-5)])
@pytest.mark.parametrize("layers,bidirectional", [(1, False), (1, True), (2, True)])
@pytest.mark.parametrize("lengths", [[7, 7, 7, 7], [7, 5, 2, 1], [7, 2, 5, 1], [3, 7, 0, 7]])
def test_fast_matches_readable_outputs_and_gradients(dtype, tol, layers, bidirectional, lengths):
    fast, slow = pair(dtype, num_layers=layers, bidirectional=bidirectional)
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


def test_fast_inference_without_autograd_matches():
    fast, slow = pair(torch.float32, bidirectional=True)
    x = torch.randn(5, 9, 6)
    lengths = torch.tensor([9, 1, 4, 9, 6])
    with torch.inference_mode():
        a, sa = fast(x, lengths)
        b, sb = slow(x, lengths)
    torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    torch.testing.assert_close(sa.ltm, sb.ltm, rtol=0, atol=1e-6)
    assert torch.all(a[1, 1:] == 0)


def test_fast_path_gradcheck():
    torch.manual_seed(3)
    layer = Recurrent("lstm", 3, 2, fast=True).double()
    x = torch.randn(3, 4, 3, dtype=torch.float64, requires_grad=True)
    lengths = torch.tensor([4, 2, 3])
    assert torch.autograd.gradcheck(lambda x, *p: layer(x, lengths)[0], (x, *layer.parameters()))
