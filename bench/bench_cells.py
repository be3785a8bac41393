"""Each cell against torch.nn.LSTM at the same shapes, side by side in one run, against the machine's ceiling.

    python bench/bench_cells.py [--repeats 10] [--threads N] [--libraries]

For every shape and implementation: forward+backward and forward-only (inference) time, tokens per
second (forward-only), achieved GFLOP/s counting the multiply-adds of the equations (four-gate LSTM:
4H(E+H) + H^2 per token and direction; classic: 4H(E+H); RNN: H(E+H); backward counted as twice the
forward) and their fraction of the ceiling (the faster of a 2048^3 float32 product through torch.mm, the
BLAS torch was built with, and through oneDNN, same threads, same run) and of the cores' FMA peak
(clock x vector width; the run says which BLAS, ISA and clock),
and the memory saved for backward (every tensor autograd keeps, counted once). Ratios are to
torch.nn.LSTM in the same run: those are what to compare across machines, not the milliseconds.
Runs are interleaved, so machine noise hits every implementation alike. The compiled loop runs with
the matrix libraries this machine's measurement chose (fourgate/products.py; the run says which);
--libraries adds a row for each library forced on it (MKL, MKL with packed weights, oneDNN).
"""
from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch
from torch import nn

from reviewlstm.nn.fourgate import compiled, products
from reviewlstm.nn.layers import Recurrent

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


def _best_gflops(run, flops: float, reps: int = 4, rounds: int = 5) -> float:
    """The best of several rounds: one round can catch the cores still clocking up or busy."""
    run()
    best = 0.0
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(reps):
            run()
        best = max(best, flops * reps / (time.perf_counter() - t0) / 1e9)
    return best


def gemm_ceilings(n: int = 2048) -> dict[str, float]:
    """GFLOP/s of an n x n x n float32 product through each library torch carries, same threads, same
    run: torch.mm (the BLAS torch was built with, MKL on x86 wheels) and oneDNN's matmul (what
    nn.LSTM's CPU kernel runs on). The larger is the ceiling: what the cores do with the best GEMM."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    out = {f"{blas()} (torch.mm)": _best_gflops(lambda: torch.mm(a, b), 2 * n ** 3)}
    if torch.backends.mkldnn.is_available():
        am, bm = a.to_mkldnn(), b.t().contiguous().to_mkldnn()
        out["oneDNN (mkldnn_linear)"] = _best_gflops(lambda: torch._C._nn.mkldnn_linear(am, bm), 2 * n ** 3)
    return out


def blas() -> str:
    config = torch.__config__.show()
    return next((name for key, name in (("BLAS_INFO=mkl", "MKL"), ("BLAS_INFO=open", "OpenBLAS"),
                                         ("BLAS_INFO=accelerate", "Accelerate")) if key in config), "BLAS")


def fma_peak(threads: int) -> tuple[float, str]:
    """The cores' float32 FMA peak in GFLOP/s, from the clock and the vector width (an upper bound:
    it assumes two FMA pipes of the full width per core and the clock /proc/cpuinfo reports), and
    how it was computed."""
    flags, mhz = set(), 0.0
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
            elif line.startswith("cpu MHz") and not mhz:
                mhz = float(line.split(":", 1)[1])
    except OSError:
        return float("nan"), "no /proc/cpuinfo"
    try:
        mhz = max(mhz, int(open("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq").read()) / 1000)
    except (OSError, ValueError):
        pass
    lanes = 16 if "avx512f" in flags else 8 if "avx2" in flags else 4
    peak = threads * mhz / 1e3 * lanes * 2 * 2  # cores x GHz x lanes x 2 flops a FMA x 2 pipes
    return peak, f"{threads} core(s) x {mhz / 1e3:.2f} GHz x {lanes} float32 lanes x 2 (FMA) x 2 pipes"


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
    ap.add_argument("--libraries", action="store_true", help="also time the compiled loop with each matrix library forced")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    module = compiled.load()
    chosen = products.current()
    # each compiled row sets its own libraries before its call (they are one global of the kernel)
    setups = {"four-gate (compiled)": lambda: products.use(module, chosen)}
    implementations = dict(IMPLEMENTATIONS)
    if args.libraries and module is not None:
        build = __import__("pathlib").Path(module.__file__).parent
        for lib in products.LIBRARIES:
            name = f"four-gate (compiled, {lib})"
            implementations[name] = IMPLEMENTATIONS["four-gate (compiled)"]
            setups[name] = (lambda lib: lambda: products.apply(module, build, forced=lib))(lib)
    gemms = gemm_ceilings()
    peak = max(gemms.values())
    fma, how = fma_peak(torch.get_num_threads())
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.processor() or platform.machine()}, "
          f"ISA {torch.backends.cpu.get_cpu_capability()}; kernel {compiled.status()}")
    print("GEMM 2048^3: " + ", ".join(f"{k} {v:.1f} GFLOP/s" for k, v in gemms.items())
          + f"; ceiling = the best, {peak:.1f}; FMA peak {fma:.0f} GFLOP/s ({how})")
    if peak > fma:  # a virtual machine reports its base clock; the cores run faster than that
        fma = peak
        print(f"the best GEMM is above that FMA peak: the cores run above the reported clock (at least "
              f"{how.split(' x ')[1].split()[0]} x {peak / fma_peak(torch.get_num_threads())[0]:.2f}); "
              "'% of FMA peak' below is then taken against the best GEMM")
    for B, T, E, H, bi in SHAPES:
        D = 2 if bi else 1
        print(f"\n**B={B}, T={T}, E={E}, H={H}, {'bidirectional' if bi else 'one direction'}**\n")
        print("| implementation | fwd+bwd ms | ratio | fwd-only ms | ratio | tokens/s (fwd) | GFLOP/s fwd | "
              "GFLOP/s fwd+bwd | % of ceiling (fwd+bwd) | % of FMA peak | saved for backward |")
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        torch.manual_seed(0)
        models = {name: make(E, H, bi) for name, make in implementations.items()}
        x = torch.randn(B, T, E, requires_grad=True)
        fb = {k: [] for k in models}
        fw = {k: [] for k in models}
        for rep in range(args.repeats + 2):
            for name, m in models.items():
                m.zero_grad(set_to_none=True)
                if name in setups and module is not None:
                    setups[name]()
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
                  f"{3 * flops / f_b / 1e9 / peak:.1%} | {3 * flops / f_b / 1e9 / fma:.1%} | {mem:.1f} MB |", flush=True)


if __name__ == "__main__":
    main()
