"""Forward+backward time of `Recurrent` for each cell against torch.nn.LSTM, same shapes, side by side.

    python bench/bench_cells.py [--repeats 10] [--threads N]

Prints a markdown table: median milliseconds per forward+backward and the ratio to torch.nn.LSTM
measured in the same run (the ratios are what to compare across machines, not the milliseconds).
"""
from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch
from torch import nn

from reviewlstm.layers import Recurrent

SHAPES = [(64, 50, 50, 150), (64, 50, 50, 300), (64, 50, 300, 150), (64, 50, 300, 300)]  # B, T, E, H


def time_fwd_bwd(module, x) -> float:
    start = time.perf_counter()
    out = module(x)[0]
    out.sum().backward()
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.processor() or platform.machine()}")
    print("| B, T, E, H | nn.LSTM ms | lstm (four-gate, fast path) | lstm (readable loop) | classic-lstm | rnn |")
    print("|---|---|---|---|---|---|")
    for B, T, E, H in SHAPES:
        torch.manual_seed(0)
        models = {"nn.LSTM": nn.LSTM(E, H, batch_first=True)}
        for cell in ("lstm", "classic-lstm", "rnn"):
            models[cell] = Recurrent(cell, E, H)
        models["lstm (readable)"] = Recurrent("lstm", E, H, fast=False)
        x = torch.randn(B, T, E, requires_grad=True)
        times = {k: [] for k in models}
        for rep in range(args.repeats + 2):  # interleaved, so machine noise hits every model alike
            for name, m in models.items():
                m.zero_grad(set_to_none=True)
                t = time_fwd_bwd(m, x)
                if rep >= 2:  # two warm-up rounds
                    times[name].append(t)
        med = {k: statistics.median(v) * 1000 for k, v in times.items()}
        base = med["nn.LSTM"]
        cells = " | ".join(f"{med[c]:.1f} ms ({med[c] / base:.2f}x)" for c in ("lstm", "lstm (readable)", "classic-lstm", "rnn"))
        print(f"| {B}, {T}, {E}, {H} | {base:.1f} | {cells} |", flush=True)


if __name__ == "__main__":
    main()
