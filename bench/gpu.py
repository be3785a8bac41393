"""The four-gate LSTM on a CUDA GPU: the Triton kernel against cuDNN's nn.LSTM and the step-by-step loop.

    PYTHONPATH=src python bench/gpu.py [--sst DIR] [--repeats 20] [--sweep] [--sweep-split]

In one run, on one GPU:
- the ceiling: a 4096^3 float32 matrix product at IEEE precision (TF32 off), TFLOP/s;
- for each shape: forward+backward and forward-only (no autograd) time of torch.nn.LSTM (cuDNN, TF32
  off, as this path is IEEE float32 too), the four-gate cell's Triton kernel (one launch per direction
  per pass), and the same cell's Python loop (a cuBLAS product and fused-by-nobody element-wise ops
  per step: what ran on CUDA before), with ratios to nn.LSTM and achieved GFLOP/s;
- end to end, the bundled model on the GPU: SST-5 dev sentences per second (batches of 128) and
  single-review latency p50/p99, Triton kernel against the Python loop.
CUDA events time the GPU; every figure is the median of `--repeats` after warm-up.
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
from torch import nn

from dataclasses import replace

from reviewlstm import api
from reviewlstm.nn.fourgate.triton_loop import DEFAULT, TritonSettings
from reviewlstm.io.data import read_examples
from reviewlstm.nn.layers import Recurrent
from reviewlstm.inference.predict import Predictor

from common import sst_arg

SHAPES = [  # B, T, E, H, bidirectional
    (64, 50, 50, 150, True),     # the default model's layer, a training batch
    (128, 25, 50, 150, True),    # the default model's layer, a prediction batch of SST sentences
    (64, 50, 300, 300, False),   # the larger shape
    (1024, 50, 300, 300, False),  # a wide batch: how the kernel scales with row blocks
]


def cuda_time(fn, repeats: int) -> float:
    """Median milliseconds of fn() on the GPU."""
    for _ in range(3):
        fn()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def ceiling(repeats: int) -> float:
    a = torch.randn(4096, 4096, device="cuda")
    ms = cuda_time(lambda: a @ a, repeats)
    return 2 * 4096 ** 3 / ms / 1e9  # TFLOP/s


def _sweep(repeats: int, columns: list[str], configs: list[tuple], apply) -> TritonSettings:
    """Time forward+backward of the four-gate layer on the Triton path at two shapes for each config
    (`apply(*config)` gives its TritonSettings), print a table row each, return the fastest (summed)."""
    print("| " + " | ".join(columns) + " | fwd+bwd ms at 64/50/50/150 bi | at 64/50/300/300 |")
    print("|" + " --- |" * (len(columns) + 2))
    best = None
    for config in configs:
        settings = apply(*config)
        ms = []
        for B, T, E, H, bi in (SHAPES[0], SHAPES[2]):
            layer = Recurrent("lstm", E, H, bidirectional=bi, backend="triton").cuda()
            layer.triton_settings = settings
            x = torch.randn(B, T, E, device="cuda", requires_grad=True)
            lengths = torch.full((B,), T, device="cuda")
            ms.append(cuda_time(lambda: layer(x, lengths)[0].sum().backward(), repeats))
        print("| " + " | ".join(map(str, config)) + f" | {ms[0]:.2f} | {ms[1]:.2f} |", flush=True)
        if best is None or sum(ms) < best[0]:
            best = (sum(ms), settings)
    return best[1]


def sweep(repeats: int, settings: TritonSettings) -> TritonSettings:
    """The row-block kernels' units, warps and pipelining stages; returns settings with the fastest."""
    def apply(units, warps, stages):
        return replace(settings, split=False, units=units, warps=warps, stages=stages)

    best = _sweep(repeats, ["units", "warps", "stages"],
                  [(b, w, s) for b in (32, 64) for w in (4, 8) for s in (1, 2, 3)], apply)
    print(f"\nfastest: units {best.units}, {best.warps} warps, {best.stages} stages (used below)\n", flush=True)
    return replace(best, split=settings.split)


def sweep_split(repeats: int, settings: TritonSettings) -> TritonSettings:
    """The split kernels' units per program and warps; returns settings with the fastest."""
    def apply(units, warps):
        return replace(settings, split=True, split_units=units, split_warps=warps)

    best = _sweep(repeats, ["units a program", "warps"], [(16, 2), (16, 4), (32, 2), (32, 4)], apply)
    print(f"\nfastest: {best.split_units} units a program, {best.split_warps} warps (used below)\n", flush=True)
    return best


def cells(repeats: int, settings: TritonSettings) -> None:
    print("| shape B/T/E/H, dirs | implementation | fwd+bwd ms | x nn.LSTM | fwd ms | x nn.LSTM | fwd GFLOP/s |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for B, T, E, H, bi in SHAPES:
        D = 2 if bi else 1
        impls = {"torch.nn.LSTM (cuDNN)": nn.LSTM(E, H, batch_first=True, bidirectional=bi),
                 "four-gate, Triton, units split (default)": Recurrent("lstm", E, H, bidirectional=bi, backend="triton"),
                 "four-gate, Triton, a program per row block": Recurrent("lstm", E, H, bidirectional=bi,
                                                                          backend="triton"),
                 "four-gate, step loop": Recurrent("lstm", E, H, bidirectional=bi, backend="python")}
        x = torch.randn(B, T, E, device="cuda")
        lengths = torch.full((B,), T, device="cuda")
        flops = 2 * B * T * D * (4 * H * (E + H) + H * H)  # the four-gate equations' multiply-adds
        rows = {}
        for name, layer in impls.items():
            # the split kernels where their programs fit at once, else (and for the other row) row blocks
            layer.triton_settings = replace(settings, split="split" in name)
            layer.cuda()
            if isinstance(layer, nn.LSTM):
                run = lambda: layer(x)[0]
            else:
                run = lambda: layer(x, lengths, outputs=True)[0]
            xg = x.clone().requires_grad_(True)
            if isinstance(layer, nn.LSTM):
                train_step = lambda: layer(xg)[0].sum().backward()
            else:
                train_step = lambda: layer(xg, lengths)[0].sum().backward()
            both = cuda_time(train_step, repeats)
            with torch.no_grad():
                fwd = cuda_time(run, repeats)
            rows[name] = (both, fwd)
        ref_both, ref_fwd = rows["torch.nn.LSTM (cuDNN)"]
        for name, (both, fwd) in rows.items():
            print(f"| {B}/{T}/{E}/{H}, {D} | {name} | {both:.2f} | {both / ref_both:.2f} | {fwd:.2f} | "
                  f"{fwd / ref_fwd:.2f} | {flops / fwd / 1e6:.0f} |", flush=True)


def end_to_end(sst: Path, repeats: int, settings: TritonSettings) -> None:
    loaded = api.load_model()
    loaded.model.cuda().eval()
    dev = [e.text for e in read_examples(sst / "dev.txt")]
    predictor = Predictor(loaded)
    print("\n| bundled model on the GPU | dev sentences/s | single review p50 ms | p99 ms |")
    print("| --- | --- | --- | --- |")
    for label, fast, split in (("Triton, units split (default)", "triton", True),
                               ("Triton, a program per row block", "triton", False), ("step loop", "python", True)):
        loaded.model.rnn.backend = fast
        loaded.model.rnn.triton_settings = replace(settings, split=split)
        predictor.predict(dev[:256])
        torch.cuda.synchronize()
        walls = []
        for _ in range(3):
            t0 = time.perf_counter()
            predictor.predict(dev)
            torch.cuda.synchronize()
            walls.append(time.perf_counter() - t0)
        lat = []
        for text in dev[:repeats * 10]:
            t0 = time.perf_counter()
            predictor.predict([text])
            torch.cuda.synchronize()
            lat.append((time.perf_counter() - t0) * 1e3)
        lat.sort()
        print(f"| four-gate, {label} | {len(dev) / min(walls):,.0f} | {lat[len(lat) // 2]:.2f} | "
              f"{lat[int(len(lat) * 0.99)]:.2f} |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    sst_arg(ap)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--sweep", action="store_true", help="first choose BH and num_warps (see sweep)")
    ap.add_argument("--sweep-split", action="store_true", help="first choose the split kernels' settings")
    args = ap.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    import triton
    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}, triton {triton.__version__}; "
          f"float32 IEEE matmul ceiling {ceiling(args.repeats):.1f} TFLOP/s\n", flush=True)
    torch.manual_seed(0)
    settings = DEFAULT
    if args.sweep:
        settings = sweep(args.repeats, settings)
    if args.sweep_split:
        settings = sweep_split(args.repeats, settings)
    print(f"Triton kernels: split {settings.split_units} units a program, {settings.split_warps} warps; "
          f"per row block {settings.units} units, {settings.warps} warps; {settings.stages} stages\n")
    cells(args.repeats, settings)
    end_to_end(Path(args.sst), args.repeats, settings)


if __name__ == "__main__":
    main()
