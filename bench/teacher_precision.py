"""The teacher's time on a CPU: fine-tuning steps and labelling in float32 and in bfloat16 autocast.

    python bench/teacher_precision.py [--steps 20] [--label 2000] [--batch 32] [--phrases] [--threads 2]
                                      [--sst ../shared/data/sst5]

MiniLM-L6 (the distillation teacher) on SST-5 training sentences (or, --phrases, its phrases: most
are a few words), batch 32 for fine-tuning, batch 64 for labelling. Each precision runs the same batches, interleaved round by round so
the machine's noise hits both alike; the median step time and texts/s are reported, and for
labelling how far bfloat16's probabilities are from float32's (largest difference, argmax agreement).
bfloat16 runs on oneDNN's AMX or AVX-512 BF16 kernels where the CPU has them (the run says which); on
a CPU without either it is emulated and slower. The teacher's dev accuracy with each is measured by
fine-tuning in full (`bench/distill.py --teacher-precision ...`).
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from reviewlstm.io.data import read_examples
from reviewlstm.distillation.teacher import Teacher, autocast, cpu_bfloat16

from common import sst_arg


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--label", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--phrases", action="store_true", help="SST-5's phrases instead of its sentences")
    sst_arg(ap)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    examples = list(read_examples(Path(args.sst) / "train.txt", phrases=args.phrases))
    texts = [" ".join(e.tokens) for e in examples]
    labels = torch.tensor([e.rating - 1 for e in examples])
    print(f"torch {torch.__version__}, {args.threads} threads, {torch.backends.cpu.get_cpu_capability()}; "
          f"bfloat16 kernels: {cpu_bfloat16() or 'none (emulated)'}")
    teachers = {p: Teacher.from_encoder("minilm", (1, 5), 256, seed=0) for p in ("float32", "bfloat16")}
    optimizers = {p: torch.optim.AdamW(t.parameters(), lr=5e-5) for p, t in teachers.items()}
    rng = np.random.default_rng(0)
    batches = [rng.choice(len(texts), args.batch, replace=False).tolist() for _ in range(args.steps + 2)]
    step_times = {p: [] for p in teachers}
    for n, batch in enumerate(batches):
        for p, teacher in teachers.items():
            teacher.train()
            ids = teacher.encode([texts[i] for i in batch])
            start = time.perf_counter()
            with autocast(p):
                logits = teacher(*teacher.batch(ids, "cpu"))
            loss = F.cross_entropy(logits.float(), labels[batch])
            optimizers[p].zero_grad(set_to_none=True)
            loss.backward()
            optimizers[p].step()
            if n >= 2:  # two warm-up steps
                step_times[p].append(time.perf_counter() - start)
    print(f"\n| precision | fine-tuning step (batch {args.batch}{', phrases' if args.phrases else ''}), median ms | steps/s | vs float32 |")
    print("|---|---|---|---|")
    base = statistics.median(step_times["float32"])
    for p, ts in step_times.items():
        m = statistics.median(ts)
        print(f"| {p} | {m * 1e3:.0f} | {1 / m:.2f} | {base / m:.2f}x |")

    sample = [texts[i] for i in rng.choice(len(texts), min(args.label, len(texts)), replace=False)]
    frozen = teachers["float32"]
    label_times, probs = {p: [] for p in teachers}, {}
    for _ in range(3):
        for p in teachers:
            start = time.perf_counter()
            logits = frozen.logits(sample, precision=p)
            label_times[p].append(time.perf_counter() - start)
            probs[p] = torch.softmax(torch.from_numpy(logits), 1).numpy()
    print(f"\n| precision | labelling {len(sample)} {'phrases' if args.phrases else 'sentences'} (batch 64), median s | texts/s | vs float32 | "
          "largest probability difference | same argmax |")
    print("|---|---|---|---|---|---|")
    base = statistics.median(label_times["float32"])
    for p, ts in label_times.items():
        m = statistics.median(ts)
        diff = np.abs(probs[p] - probs["float32"]).max()
        same = (probs[p].argmax(1) == probs["float32"].argmax(1)).mean()
        print(f"| {p} | {m:.2f} | {len(sample) / m:,.0f} | {base / m:.2f}x | {diff:.4f} | {same:.2%} |")


if __name__ == "__main__":
    main()
