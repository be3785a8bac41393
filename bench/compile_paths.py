"""The ways to make the four-gate loop fast, side by side: torch.compile, TorchScript,
the hand-written autograd Function (Python loop) and the compiled C++ loop, against torch.nn.LSTM.

    python bench/compile_paths.py [--repeats 10]

One direction, no padding (B=64, T=50, E=50, H=150: the default model's layer size), float32.
torch.compile and TorchScript get the same step function (the four-gate equations, one fused
W_hh product) with the loop over time in Python (compile) or in TorchScript (script); their
compile time is reported separately and left out of the medians. Forward-only runs under
inference_mode; forward+backward sums the outputs and backpropagates to the input and weights.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

from reviewlstm.nn.fourgate import compiled
from reviewlstm.nn.layers import Recurrent


def step(p_t: torch.Tensor, ltm: torch.Tensor, stm: torch.Tensor, w_hh_t: torch.Tensor, w_u_t: torch.Tensor,
         bias_u: torch.Tensor):
    pre = p_t + stm @ w_hh_t                              # (B, 4H): W [stm, event] + b
    H = ltm.size(1)
    n = torch.tanh(pre[:, :H])
    i = torch.sigmoid(pre[:, H:2 * H])
    f = torch.sigmoid(pre[:, 2 * H:3 * H])
    v = torch.sigmoid(pre[:, 3 * H:])
    forget = ltm * f
    ltm = forget + n * i                                  # remember
    stm = torch.tanh(forget @ w_u_t + bias_u) * v         # use
    return ltm, stm


@torch.jit.script
def scripted_loop(proj: torch.Tensor, ltm: torch.Tensor, stm: torch.Tensor, w_hh_t: torch.Tensor,
                  w_u_t: torch.Tensor, bias_u: torch.Tensor) -> torch.Tensor:
    H = ltm.size(1)
    outs = []
    for t in range(proj.size(0)):
        pre = proj[t] + stm @ w_hh_t
        n = torch.tanh(pre[:, :H])
        i = torch.sigmoid(pre[:, H:2 * H])
        f = torch.sigmoid(pre[:, 2 * H:3 * H])
        v = torch.sigmoid(pre[:, 3 * H:])
        forget = ltm * f
        ltm = forget + n * i
        stm = torch.tanh(forget @ w_u_t + bias_u) * v
        outs.append(stm)
    return torch.stack(outs)


class Looped(nn.Module):
    """The four-gate cell's weights (taken from a Recurrent), stepped by `step_fn` over time."""

    def __init__(self, layer: Recurrent, step_fn, scripted: bool = False):
        super().__init__()
        self.cell, self.step_fn, self.scripted = layer.cells[0], step_fn, scripted

    def forward(self, x):
        c = self.cell
        proj = c.project(x.transpose(0, 1))  # (T, B, 4H)
        B, H = x.size(0), c.weight_hh.size(1)
        ltm = stm = x.new_zeros(B, H)
        if self.scripted:
            return (scripted_loop(proj, ltm, stm, c.weight_hh.t(), c.weight_u.t(), c.bias_u),)
        outs = []
        for t in range(proj.size(0)):
            ltm, stm = self.step_fn(proj[t], ltm, stm, c.weight_hh.t(), c.weight_u.t(), c.bias_u)
            outs.append(stm)
        return (torch.stack(outs),)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=10)
    args = ap.parse_args()
    B, T, E, H = 64, 50, 50, 150
    torch.manual_seed(0)
    base = Recurrent("lstm", E, H, backend="readable")
    models = {
        "torch.nn.LSTM": nn.LSTM(E, H, batch_first=True),
        "readable loop (autograd per op)": base,
        "torch.compile(step), loop in Python": Looped(base, torch.compile(step, dynamic=False)),
        "TorchScript loop (torch.jit.script)": Looped(base, None, scripted=True),
        "autograd Function, Python loop (fourgate/python_loop.py)": Recurrent("lstm", E, H, backend="python"),
        "autograd Function, compiled C++ loop": Recurrent("lstm", E, H, backend="compiled"),
    }
    for name in ("autograd Function, Python loop (fourgate/python_loop.py)", "autograd Function, compiled C++ loop"):
        models[name].load_state_dict(base.state_dict())
    compiled.load()
    x = torch.randn(B, T, E, requires_grad=True)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; B={B}, T={T}, E={E}, H={H}, one direction")
    for name, m in models.items():  # first calls: compilation, tracing, profiling runs
        t0 = time.perf_counter()
        for _ in range(3):
            m(x)[0].sum().backward()
            with torch.inference_mode():
                m(x)
        print(f"warm-up (compile) {name}: {time.perf_counter() - t0:.1f} s")
    ref = base(x)[0].detach()
    fb = {k: [] for k in models}
    fw = {k: [] for k in models}
    for _ in range(args.repeats):
        for name, m in models.items():
            t0 = time.perf_counter()
            m(x)[0].sum().backward()
            t1 = time.perf_counter()
            with torch.inference_mode():
                m(x)
            fw[name].append(time.perf_counter() - t1)
            fb[name].append(t1 - t0)
    print("\n| implementation | fwd+bwd ms | vs nn.LSTM | fwd-only ms | vs nn.LSTM | max abs diff to readable |")
    print("|---|---|---|---|---|---|")
    b_fb, b_fw = statistics.median(fb["torch.nn.LSTM"]), statistics.median(fw["torch.nn.LSTM"])
    for name, m in models.items():
        out = m(x)[0].detach()
        if out.shape != ref.shape:
            out = out.transpose(0, 1)
        diff = "—" if name == "torch.nn.LSTM" else f"{(out - ref).abs().max().item():.1e}"
        f_b, f_w = statistics.median(fb[name]), statistics.median(fw[name])
        print(f"| {name} | {f_b * 1e3:.1f} | {f_b / b_fb:.2f}x | {f_w * 1e3:.1f} | {f_w / b_fw:.2f}x | {diff} |")


if __name__ == "__main__":
    main()
