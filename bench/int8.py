"""Dynamic int8 quantization of the default model: what it costs on SST-5 dev and what it buys in speed.

    python bench/int8.py [--model DIR] [--dev FILE] [--sst ../shared/data/sst5]

PyTorch's dynamic quantization (torch.ao) covers nn.Linear: here the input projection of every gate
(`cell.project`, the E -> 4H product for all steps at once) and the head. The recurrent products stay
float32 inside the compiled loop (there is no int8 path for them). Accuracy and MAE on dev (SST-5's, or --dev with
a model trained on that data), batch throughput (texts/s) and single-text latency, side by side in one run.
"""
from __future__ import annotations

import argparse
import copy
import statistics
import time
import warnings
from pathlib import Path

import torch

from reviewlstm import api
from reviewlstm.io.data import read_examples
from reviewlstm.inference.metrics import score
from reviewlstm.inference.predict import Predictor

from common import sst_arg


def quantized(loaded):
    from torch.ao.nn.quantized.dynamic import Linear as QLinear
    q = copy.copy(loaded)
    q.model = copy.deepcopy(loaded.model)
    for cell in q.model.rnn.cells:
        float_linear = torch.nn.Linear(cell.weight_ih.size(1), cell.weight_ih.size(0))
        float_linear.weight.data.copy_(cell.weight_ih.data)
        float_linear.bias.data.copy_(cell.bias.data)
        float_linear.qconfig = torch.ao.quantization.default_dynamic_qconfig
        cell.project = QLinear.from_float(float_linear)  # an instance attribute: shadows LSTMCell.project
    q.model.head = torch.ao.quantization.quantize_dynamic(torch.nn.Sequential(q.model.head), {torch.nn.Linear},
                                                         dtype=torch.qint8)[0]
    return q


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=None)
    sst_arg(ap)
    ap.add_argument("--dev", default=None, help="the dev file to score (default: SST-5's dev.txt)")
    args = ap.parse_args()
    warnings.filterwarnings("ignore")  # torch.ao's deprecation notices
    loaded = api.load_model(args.model)
    dev = list(read_examples(args.dev or Path(args.sst) / "dev.txt", scale=(loaded.config.scale_min, loaded.config.scale_max)))
    texts, gold = [e.text for e in dev], [e.rating for e in dev]
    variants = {"float32": Predictor(loaded), "int8 (projections + head)": Predictor(quantized(loaded))}
    print(f"{args.dev or 'SST-5 dev'}, {len(dev)} texts")
    print("| weights | dev accuracy | dev MAE | batch texts/s | single p50 ms |")
    print("|---|---|---|---|---|")
    rates = {k: [] for k in variants}
    lat = {k: [] for k in variants}
    preds = {}
    for rep in range(4):  # interleaved
        for name, p in variants.items():
            t0 = time.perf_counter()
            out = p.predict(texts)
            rates[name].append(len(texts) / (time.perf_counter() - t0))
            preds[name] = out
            for t in texts[:200]:
                t0 = time.perf_counter()
                p.predict([t])
                lat[name].append(time.perf_counter() - t0)
    for name in variants:
        s = score(gold, [p.rating for p in preds[name]], None, loaded.config.ratings)
        print(f"| {name} | {s['accuracy']:.1%} | {s['mae']:.3f} | {statistics.median(rates[name]):,.0f} | "
              f"{statistics.median(lat[name]) * 1000:.2f} |")


if __name__ == "__main__":
    main()
