"""Are the word contributions faithful? Delete the top-k words by each method and see the prediction move.

    python bench/faithfulness.py [--model DIR] [--n 300] [--k 5]

AOPC (area over the perturbation curve, Samek et al. 2017): for each SST-5 dev sentence, the
probability of the predicted rating is measured after deleting the 1, 2, ..., k most important
words (by integrated gradients, by occlusion, and in a random order); AOPC is the mean drop
over k = 1..k and over sentences. A faithful method drops the probability faster than random.
"""
from __future__ import annotations

import argparse
import random
import statistics
import time
from pathlib import Path

import numpy as np

from reviewlstm import api
from reviewlstm.io.data import read_examples
from reviewlstm.inference.explain import explain
from reviewlstm.inference.predict import predict_proba

from common import sst_arg


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=None)
    sst_arg(ap)
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    loaded = api.load_model(args.model)
    rng = random.Random(args.seed)
    dev = [e for e in read_examples(Path(args.sst) / "dev.txt") if len(e.tokens) > args.k]
    rng.shuffle(dev)
    dev = dev[:args.n]
    methods = {"integrated_gradients": [], "occlusion": [], "random": []}
    seconds = {m: 0.0 for m in methods}
    for ex in dev:
        ids = loaded.vocab.encode([t.lower() for t in ex.tokens])
        base = predict_proba(loaded.model, [ids])[0]
        target = int(base.argmax())
        for method in methods:
            t0 = time.perf_counter()
            if method == "random":
                order = list(range(len(ids)))
                rng.shuffle(order)
            else:
                e = explain(loaded, ex.text, method=method, gates=False, trajectory=False, pretokenized=ex.tokens)
                scores = np.asarray(e.class_contributions)[:, target]
                order = list(np.argsort(-scores, kind="stable"))
            seconds[method] += time.perf_counter() - t0
            variants = []
            for k in range(1, args.k + 1):
                drop = set(order[:k])
                variants.append([w for j, w in enumerate(ids) if j not in drop])
            probs = predict_proba(loaded.model, variants)[:, target]
            methods[method].append(float(np.mean(base[target] - probs)))
    print(f"{len(dev)} SST-5 dev sentences, top-{args.k} deletion, model {loaded.path}")
    print("| method | AOPC (mean drop of the predicted rating's probability) | seconds per sentence |")
    print("|---|---|---|")
    for m, v in methods.items():
        sd = statistics.stdev(v) / len(v) ** 0.5
        print(f"| {m} | {statistics.mean(v):.4f} ± {sd:.4f} | {seconds[m] / len(dev):.3f} |")


if __name__ == "__main__":
    main()
