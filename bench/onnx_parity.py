"""The exported ONNX model against the native one on SST-5 dev: probabilities, ratings, speed.

    pip install -e ".[onnx]"
    python bench/onnx_parity.py [--model DIR] [--sst ../shared/data/sst5] [--threads 2]

Both read every dev review the same way (`onnx_export.onnx_ids`: predict's tokenizer and reading
rule), in batches of 128 reviews of similar length; the largest probability difference and the
number of ratings that differ, then batch throughput and one-review latency (p50 / p99 of 300),
interleaved, onnxruntime with the same thread count as torch.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from reviewlstm import api
from reviewlstm.io.data import read_examples
from reviewlstm.inference.onnx_export import onnx_ids

from common import sst_arg


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=None)
    sst_arg(ap)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    import onnxruntime as ort
    torch.set_num_threads(args.threads)
    loaded = api.load_model(args.model)
    texts = [e.text for e in read_examples(Path(args.sst) / "dev.txt")]
    with tempfile.TemporaryDirectory() as tmp:
        path = api.export(Path(tmp) / "onnx", model=loaded)
        options = ort.SessionOptions()
        options.intra_op_num_threads = args.threads
        runtime = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        ids, lengths, owner, weight = onnx_ids(loaded, texts)
        order = np.argsort(-lengths, kind="stable")
        batches = [order[i:i + 128] for i in range(0, len(order), 128)]

        def run_onnx(idx):
            width = int(lengths[idx].max())
            return runtime.run(["probabilities"], {"ids": ids[idx, :width], "lengths": lengths[idx]})[0]

        @torch.inference_mode()
        def run_native(idx):
            width = int(lengths[idx].max())
            m = loaded.model
            return m.probabilities(m(torch.from_numpy(ids[idx, :width]), torch.from_numpy(lengths[idx]))).numpy()

        def all_rows(fn):
            out = np.zeros((len(lengths), len(loaded.config.ratings)), dtype=np.float64)
            for idx in batches:
                out[idx] = fn(idx)
            return out

        def per_text(rows):
            total = np.zeros((len(texts), rows.shape[1]))
            np.add.at(total, owner, rows * weight[:, None])
            return total / total.sum(1, keepdims=True)

        a, b = per_text(all_rows(run_onnx)), per_text(all_rows(run_native))
        print(f"SST-5 dev, {len(texts)} reviews ({len(lengths)} passes), {args.threads} threads, {path.stat().st_size / 2**20:.1f} MB")
        print(f"largest probability difference {np.abs(a - b).max():.2e}; ratings that differ: "
              f"{int((a.argmax(1) != b.argmax(1)).sum())} of {len(texts)}")
        speed = {"onnxruntime": [], "native (torch, compiled loop)": []}
        single = {k: [] for k in speed}
        for _ in range(5):
            for name, fn in (("onnxruntime", run_onnx), ("native (torch, compiled loop)", run_native)):
                start = time.perf_counter()
                all_rows(fn)
                speed[name].append(len(texts) / (time.perf_counter() - start))
                for i in range(60):
                    start = time.perf_counter()
                    fn(np.array([i * 7 % len(lengths)]))
                    single[name].append(time.perf_counter() - start)
        print("\n| runtime | batch reviews/s (median of 5) | one review p50 ms | p99 ms |")
        print("|---|---|---|---|")
        for name in speed:
            s = sorted(single[name])
            print(f"| {name} | {statistics.median(speed[name]):,.0f} | {s[len(s) // 2] * 1e3:.2f} | "
                  f"{s[int(len(s) * 0.99)] * 1e3:.2f} |")


if __name__ == "__main__":
    main()
