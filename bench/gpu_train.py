"""Training on a CUDA GPU: one sentence-level SST-5 epoch with the Triton kernel and with the step loop.

    PYTHONPATH=src REVIEWLSTM_KERNEL=off python bench/gpu_train.py [--sst DIR] [--epochs 1]

The default recipe but random embeddings (GloVe's package is not on the GPU machine) and one dev
check per epoch; each run in this process, the step loop chosen with REVIEWLSTM_TRITON=off.
Reports the time inside train() and the dev accuracy reached, so the kernel is shown to train, not
only to run.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from reviewlstm import api
from reviewlstm.training.config import TrainConfig

from common import sst_arg


def main() -> None:
    ap = argparse.ArgumentParser()
    sst_arg(ap)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--device", default="cuda", help="cpu: a dry run of this script without a GPU")
    ap.add_argument("--max-examples", type=int, default=None)
    args = ap.parse_args()
    print("| recurrent loop on the GPU | examples | epochs | train() s | dev accuracy | dev MAE |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, triton in (("Triton kernel", "on"), ("step loop", "off")):
        os.environ["REVIEWLSTM_TRITON"] = triton
        with tempfile.TemporaryDirectory() as out:
            cfg = TrainConfig(overwrite=True, train=str(Path(args.sst) / "train.txt"), dev=str(Path(args.sst) / "dev.txt"), out=out,
                              phrases=False, epochs=args.epochs, embeddings="random", device=args.device,
                              max_examples=args.max_examples,
                              evals_per_epoch=1, progress=False, seed=0)
            t0 = time.perf_counter()
            result = api.train(cfg, log=lambda line: None)
            wall = time.perf_counter() - t0
        m = result.dev_metrics
        print(f"| {name} | {args.max_examples or 8544:,} sentences | {args.epochs} | {wall:.1f} | {m['accuracy']:.1%} | {m['mae']:.3f} |",
              flush=True)


if __name__ == "__main__":
    main()
