"""One review's latency, idle and beside a CPU hog, with torch's default threads and with --threads 1.

    python bench/latency.py [--n 300]

For each setting: `api.predict` of one SST-5 sentence at a time, n of them (after 20 warm-ups), p50
and p99 in ms. The hog is one busy process per core, started before and stopped after the setting's
runs (a machine shared with other work). This is what `--threads 1` is for.
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import time
from pathlib import Path

import torch

from reviewlstm import api
from reviewlstm.io.data import read_examples

from common import sst_arg


def _spin(stop) -> None:
    while not stop.is_set():
        sum(i * i for i in range(10_000))


def measure(texts, n: int) -> tuple[float, float]:
    for t in texts[:20]:
        api.predict(t)
    times = []
    for i in range(n):
        start = time.perf_counter()
        api.predict(texts[i % len(texts)])
        times.append(time.perf_counter() - start)
    times.sort()
    return times[len(times) // 2] * 1e3, times[int(len(times) * 0.99)] * 1e3


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=300)
    sst_arg(ap)
    args = ap.parse_args()
    texts = [e.text for e in read_examples(Path(args.sst) / "dev.txt")]
    default_threads = torch.get_num_threads()
    api.load_model()
    print("| machine | threads | p50 ms | p99 ms |")
    print("|---|---|---|---|")
    for hogged in (False, True):
        ctx = mp.get_context("spawn")
        stop = ctx.Event()
        hogs = [ctx.Process(target=_spin, args=(stop,)) for _ in range(os.cpu_count() if hogged else 0)]
        for h in hogs:
            h.start()
        time.sleep(1.0 if hogged else 0)
        for threads in (default_threads, 1):
            torch.set_num_threads(threads)
            p50, p99 = measure(texts, args.n)
            print(f"| {'busy (a hog per core)' if hogged else 'idle'} | {threads} | {p50:.2f} | {p99:.2f} |", flush=True)
        stop.set()
        for h in hogs:
            h.join()
    torch.set_num_threads(default_threads)


if __name__ == "__main__":
    main()
