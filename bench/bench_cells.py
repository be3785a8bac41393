"""Each cell against torch.nn.LSTM at the same shapes, side by side in one run, against the machine's ceiling.

    python bench/bench_cells.py [--repeats 10] [--threads N]

For every shape and implementation: forward+backward and forward-only (inference) time, tokens per
second (forward-only), achieved GFLOP/s counting the multiply-adds of the equations (four-gate LSTM:
4H(E+H) + H^2 per token and direction; classic: 4H(E+H); RNN: H(E+H); backward counted as twice the
forward) and their fraction of the ceiling (a 2048 x 2048 float32 torch.mm, same threads, same run),
and the memory saved for backward (every tensor autograd keeps, counted once). Ratios are to
torch.nn.LSTM in the same run: those are what to compare across machines, not the milliseconds.
Runs are interleaved, so machine noise hits every implementation alike.
"""
from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch
from torch import nn

from reviewlstm.fourgate import compiled
from reviewlstm.layers import Recurrent

SHAPES = [  # B, T, E, H, bidirectional
    (64, 50, 50, 150, True),    # the default model's layer
    (64, 50, 50, 150, False),
    (64, 50, 300, 300, False),  # the larger shape
]
IMPLEMENTATIONS = {
    "torch.nn.LSTM": lambda E, H, bi: nn.LSTM(E, H, batch_first=True, bidirectional=bi),
    "four-gate (compiled)": lambda E, H, bi: Recurrent("lstm", E, H, bidirectional=bi, backend="compiled"),
    "four-gate (Python loop)": lambda E, H, bi: Recurrent("lstm", E, H, bidirectional=bi, backend="python"),
    "four-gate (readable)": lambda E, H, bi: Recurrent("lstm", E, H, bidirectional=bi, backend="readable"),
    "classic LSTM (readable)": lambda E, H, bi: Recurrent("classic-lstm", E, H, bidirectional=bi),
    "RNN (readable)": lambda E, H, bi: Recurrent("rnn", E, H, bidirectional=bi),
}


def ceiling(n: int = 2048, reps: int = 4, rounds: int = 5) -> float:
    """The best of several rounds: one round can catch the cores still clocking up or busy."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    best = 0.0
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(reps):
            torch.mm(a, b)
        best = max(best, 2 * n ** 3 * reps / (time.perf_counter() - t0) / 1e9)
    return best


def macs_per_token(name: str, E: int, H: int) -> int:
    if name.startswith("four-gate"):
        return 4 * H * (E + H) + H * H
    if name.startswith("RNN"):
        return H * (E + H)
    return 4 * H * (E + H)


def saved_bytes(module, x) -> int:
    """Bytes autograd keeps for backward: every saved tensor's storage, each counted once."""
    seen: dict[int, int] = {}

    def pack(t):
        seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = module(x)[0]
    out.sum().backward()
    return sum(seen.values())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    compiled.load()
    peak = ceiling()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.processor() or platform.machine()}; "
          f"kernel {compiled.status()}; torch.mm ceiling {peak:.1f} GFLOP/s")
    for B, T, E, H, bi in SHAPES:
        D = 2 if bi else 1
        print(f"\n**B={B}, T={T}, E={E}, H={H}, {'bidirectional' if bi else 'one direction'}**\n")
        print("| implementation | fwd+bwd ms | ratio | fwd-only ms | ratio | tokens/s (fwd) | GFLOP/s fwd | "
              "GFLOP/s fwd+bwd | % of ceiling (fwd+bwd) | saved for backward |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        torch.manual_seed(0)
        models = {name: make(E, H, bi) for name, make in IMPLEMENTATIONS.items()}
        x = torch.randn(B, T, E, requires_grad=True)
        fb = {k: [] for k in models}
        fw = {k: [] for k in models}
        for rep in range(args.repeats + 2):
            for name, m in models.items():
                m.zero_grad(set_to_none=True)
                t0 = time.perf_counter()
                m(x)[0].sum().backward()
                t1 = time.perf_counter()
                with torch.inference_mode():
                    m(x)
                t2 = time.perf_counter()
                if rep >= 2:  # two warm-up rounds
                    fb[name].append(t1 - t0)
                    fw[name].append(t2 - t1)
        base_fb, base_fw = statistics.median(fb["torch.nn.LSTM"]), statistics.median(fw["torch.nn.LSTM"])
        for name, m in models.items():
            f_b, f_w = statistics.median(fb[name]), statistics.median(fw[name])
            flops = 2 * macs_per_token(name, E, H) * B * T * D
            mem = saved_bytes(m, x) / 2 ** 20
            print(f"| {name} | {f_b * 1e3:.1f} | {f_b / base_fb:.2f}x | {f_w * 1e3:.1f} | {f_w / base_fw:.2f}x | "
                  f"{B * T / f_w:,.0f} | {flops / f_w / 1e9:.1f} | {3 * flops / f_b / 1e9:.1f} | "
                  f"{3 * flops / f_b / 1e9 / peak:.1%} | {mem:.1f} MB |", flush=True)


if __name__ == "__main__":
    main()
