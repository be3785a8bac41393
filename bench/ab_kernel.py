"""The compiled kernel of this checkout against the one of an earlier git revision, side by side.

    python bench/ab_kernel.py REV [--rounds 15]

Builds REV's four_gate.cpp (wherever that revision keeps it) beside the current one (same flags), checks they agree, then times
forward_dirs (inference) of both interleaved, 5 calls a round, each call on a fresh copy of the
projection (the current kernel adds into it in place), at three shapes. Prints min and median per
round and the ratio of medians.
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.cpp_extension import load

from reviewlstm.nn.fourgate import compiled


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("rev")
    ap.add_argument("--rounds", type=int, default=15)
    args = ap.parse_args()
    new = compiled.load()
    build = Path(tempfile.mkdtemp(prefix="reviewlstm-ab-"))
    source = build / "old.cpp"
    for path in ("src/reviewlstm/nn/fourgate/four_gate.cpp", "src/reviewlstm/fourgate/four_gate.cpp",
                 "src/reviewlstm/csrc/four_gate.cpp"):
        shown = subprocess.run(["git", "show", f"{args.rev}:{path}"], capture_output=True, text=True)
        if shown.returncode == 0:
            break
    source.write_text(shown.stdout)
    cflags, ldflags = compiled.BUILDS[0]
    old = load("reviewlstm_ab_old", [str(source)], build_directory=str(build), extra_cflags=cflags,
               extra_ldflags=ldflags)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; old = {args.rev}")
    for B, T, H, D in ((128, 20, 150, 2), (64, 50, 300, 1), (64, 50, 150, 1)):
        torch.manual_seed(0)
        proj = torch.randn(T, B, 4 * H)
        z, lens = torch.zeros(B, H), [B] * T
        w_hh, w_u = torch.randn(4 * H, H) * 0.05, torch.randn(H, H) * 0.05
        b_u, b = torch.zeros(H), torch.zeros(4 * H)

        def call(module):
            return module.forward_dirs([proj.clone() for _ in range(D)], lens, [z] * D, [z] * D, [w_hh] * D,
                                       [w_u] * D, [b_u] * D, [b] * D, False)

        assert (call(old)[0][1] - call(new)[0][1]).abs().max() < 1e-5, "the two kernels disagree"
        times = {"old": [], "new": []}
        for _ in range(args.rounds):
            for name, module in (("old", old), ("new", new)):
                t0 = time.perf_counter()
                for _ in range(5):
                    call(module)
                times[name].append((time.perf_counter() - t0) / 5 * 1e3)
        o, n = statistics.median(times["old"]), statistics.median(times["new"])
        print(f"B {B}, T {T}, H {H}, {D} direction(s): old min {min(times['old']):.2f} median {o:.2f} ms | "
              f"new min {min(times['new']):.2f} median {n:.2f} ms | new / old {n / o:.3f}")


if __name__ == "__main__":
    main()
