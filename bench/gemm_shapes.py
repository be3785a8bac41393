"""The four-gate loop's matrix products, through each library torch carries, at the shapes they run at.

    python bench/gemm_shapes.py [--threads 2]

For each product class of the compiled loop (every step's W_hh·stm and W_u·forget, the input
projection for all steps, the backward's product through W_hh) and a 2048³ reference: GFLOP/s of
torch.mm (the BLAS torch was built with: MKL on x86 wheels) and of oneDNN's matmul on tensors
already in its layout (as weights packed once at load would be), and oneDNN including the layout
conversions of the activations (what a per-call switch would pay). Best of 5 rounds each, one
library after the other per shape: run it twice, and trust only differences that repeat. Whether
routing a product class to oneDNN would pay on a machine is read off this table.
"""
from __future__ import annotations

import argparse
import platform
import time

import torch

SHAPES = {  # name: (M, K, N) for (M x K) @ (K x N)
    "step W_hh stm (B 64, H 150)": (64, 150, 600),
    "step W_u forget (B 64, H 150)": (64, 150, 150),
    "input projection (B 64 x T 50, E 50, H 150)": (3200, 50, 600),
    "backward through W_hh (B 64, H 150)": (64, 600, 150),
    "step W_hh stm (B 64, H 300)": (64, 300, 1200),
    "input projection (B 64 x T 50, E 300, H 300)": (3200, 300, 1200),
    "reference 2048^3": (2048, 2048, 2048),
}


def best_seconds(run, reps: int, rounds: int = 5) -> float:
    run()
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(reps):
            run()
        best = min(best, (time.perf_counter() - start) / reps)
    return best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.machine()}, "
          f"ISA {torch.backends.cpu.get_cpu_capability()}")
    print("\n| product | M x K x N | torch.mm GFLOP/s | oneDNN, packed | oneDNN, with conversions |\n|---|---|---|---|---|")
    for name, (M, K, N) in SHAPES.items():
        a, w = torch.randn(M, K), torch.randn(N, K)
        am, wm = a.to_mkldnn(), w.to_mkldnn()
        reps = 200 if M * K * N < 1e8 else 5
        flops = 2 * M * K * N
        mm = best_seconds(lambda: torch.mm(a, w.t()), reps)
        packed = best_seconds(lambda: torch._C._nn.mkldnn_linear(am, wm), reps)
        converted = best_seconds(lambda: torch._C._nn.mkldnn_linear(a.to_mkldnn(), wm).to_dense(), reps)
        print(f"| {name} | {M} x {K} x {N} | {flops / mm / 1e9:.1f} | {flops / packed / 1e9:.1f} | "
              f"{flops / converted / 1e9:.1f} |", flush=True)


if __name__ == "__main__":
    main()
