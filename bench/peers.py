"""reviewlstm's defaults against its peers, side by side, on every data set here, over seeds.

    pip install -e ".[bench]" -c constraints.txt
    python bench/peers.py [--data sst-phrases,amazon,imdb-5k,imdb-5k-stars] [--seeds 3]
                          [--distilled DATA=RUN_DIR[,RUN_DIR...] ...] [--teacher DATA=TEACHER_DIR[,TEACHER_DIR...] ...]
                          [--json runs/peers.json] [--threads 2] [--peers-only]

For each data set (bench/common.py), on the same files and machine, one after another:
- always the commonest training rating; TF-IDF word 1-2-grams + logistic regression (the package's
  own, reviewlstm.distillation.baseline); NBSVM word 1-2-grams (Wang & Manning 2012, reviewlstm.distillation.baseline); fastText
  supervised (word 2-grams). Each is trained on the same training reviews minus the same slice,
  reading the same tokens (reviewlstm's tokenizer, lower-cased), once per seed;
- `reviewlstm train` with its defaults (only --train, --dev, --out, --seed and the data's own
  --scale / --no-phrases), once per seed: it sets the same validation slice aside itself; and the
  same runs' recurrent path alone, without the n-gram path train mixed in (when dev chose one);
- with `--distilled amazon=runs/distill-amazon`: a model `reviewlstm distill` wrote, scored on the
  same dev and slice, beside its teacher alone and the ensemble teacher distill made of it (the
  teacher's distributions mixed with TF-IDF + LR's at the weight chosen on dev); several run
  directories, comma-separated (the students of one teacher, by seed), give one row of mean ± sd;
  `--seeds 0` scores only the distilled models and their teachers; `--teacher sst-phrases=DIR[,DIR...]` scores
  fine-tuned teachers, each alone and as the ensemble distill would make of it (the weight chosen on dev).
Reported on dev and on the slice that no choice touched: accuracy, MAE of the predicted rating,
macro-F1, QWK (mean ± sd over seeds), and training seconds.
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from common import PEERS, Split, data_args, datasets, mean_sd, scores, timed

from reviewlstm import api
from reviewlstm.inference import artifact
from reviewlstm.training.config import TrainConfig


def summary(runs: list[dict]) -> dict:
    """Mean and sd of each metric over the seeds' runs."""
    out = {"n": runs[0]["n"]}
    for k in ("accuracy", "mae", "macro_f1", "qwk"):
        out[k], out[k + "_sd"] = mean_sd([r[k] for r in runs])
    return out


def cell(s: dict, key: str, pct: bool) -> str:
    fmt = (lambda v: f"{v:.1%}") if pct else (lambda v: f"{v:.3f}")
    return fmt(s[key]) + (f" ± {fmt(s[key + '_sd'])}" if s.get(key + "_sd") else "")


def run(ds, seeds: list[int], distilled: str | None, threads: int, teacher: str | None = None,
        peers_only: bool = False) -> list[dict]:
    split = Split.read(ds)
    train_texts, train_y = Split.texts(split.kept), Split.ratings(split.kept)
    dev_texts, held_texts = Split.texts(split.dev), Split.texts(split.held)
    dev_y, held_y = Split.ratings(split.dev), Split.ratings(split.held)
    rows = []

    def report(model, seconds, dev_runs, held_runs, **extra):
        d, h = summary(dev_runs), summary(held_runs)
        rows.append({"data": ds.name, "model": model, "seeds": len(dev_runs), "train_seconds": round(seconds, 1),
                     "dev": d, "slice": h, **extra})
        print(f"| {ds.name} | {model} | {cell(d, 'accuracy', True)} | {cell(d, 'mae', False)} | {d['macro_f1']:.3f} "
              f"| {cell(h, 'accuracy', True)} | {cell(h, 'mae', False)} | {h['macro_f1']:.3f} | {h['qwk']:.3f} "
              f"| {seconds:.0f} s |", flush=True)

    for name, fit in PEERS.items() if seeds else ():
        dev_runs, held_runs, seconds = [], [], 0.0
        for seed in seeds:
            predict, s = timed(fit, train_texts, train_y, seed)
            seconds += s / len(seeds)
            dev_runs.append(scores(dev_y, predict(dev_texts), ds.ratings))
            held_runs.append(scores(held_y, predict(held_texts), ds.ratings))
        report(name, seconds, dev_runs, held_runs)

    dev_runs, held_runs, seconds, epochs = [], [], 0.0, []
    alone_dev, alone_held, shares = [], [], []
    for seed in seeds if not peers_only else ():
        with tempfile.TemporaryDirectory() as out:
            cfg = TrainConfig(overwrite=True, out=out, seed=seed, threads=threads, progress=False, **ds.train_args())
            result, s = timed(api.train, cfg, log=lambda line: None)
            seconds += s / len(seeds)
            assert result.holdout_metrics["n"] == len(split.held), "the slice must be the same as the peers'"
            ev = api.evaluate(ds.dev, model=api.load_model(out))
            dev_runs.append({k: ev[k] for k in ("n", "accuracy", "mae", "macro_f1", "qwk")})
            held_runs.append(result.holdout_metrics)
            epochs.append(result.best_epoch)
            loaded = api.load_model(out)  # the same run's recurrent path alone, without its n-gram path
            alone_dev.append(recurrent_alone(loaded, split.dev, ds.ratings))
            alone_held.append(recurrent_alone(loaded, split.held, ds.ratings))
            shares.append(1 - loaded.config.ngram_share)
            artifact.forget(out)  # the temporary directory is gone after this run
    if seeds and not peers_only:
        report("reviewlstm train (defaults)", seconds, dev_runs, held_runs, best_epochs=epochs, ngram_shares=shares)
        report(f"reviewlstm train, its recurrent path alone (n-gram shares {', '.join(f'{x:g}' for x in shares)})",
               seconds, alone_dev, alone_held)

    for teacher_dir in teacher.split(",") if teacher else ():
        teachers(ds, split, teacher_dir, report)
    if distilled:
        students(ds, split, distilled.split(","), report)
    return rows


def students(ds, split, run_dirs: list[str], report) -> None:
    """Distilled models of one teacher (one per seed), scored on dev and the slice as one row, beside
    that teacher alone and the ensemble teacher distill made of it."""
    models = [api.load_model(d) for d in run_dirs]
    records = [m.metadata.get("distillation", {}) for m in models]
    if len({Path(r["teacher"]).resolve() for r in records}) != 1:
        raise SystemExit(f"bench/peers.py: the distilled runs {', '.join(run_dirs)} have different teachers; "
                         "give one teacher's students per data set")
    first = records[0]
    teachers(ds, split, first["teacher"], report,
             ((first.get("teacher_check") or {}).get("ensemble") or {}).get("weight", 1.0),
             (first.get("teacher_trained") or {}).get("seconds", 0.0))
    held_y = Split.ratings(split.held)
    dev_runs, held_runs, seconds = [], [], []
    for model, record in zip(models, records):
        ev = api.evaluate(ds.dev, model=model)
        held = scores(held_y, [p.rating for p in api.predict([e.text for e in split.held], model=model)], ds.ratings)
        dev_runs.append({k: ev[k] for k in held})
        held_runs.append(held)
        seconds.append(record.get("seconds") or {})
    report(f"reviewlstm distill ({', '.join(run_dirs)})", sum(sum(s.values()) for s in seconds) / len(seconds),
           dev_runs, held_runs, stages=seconds, student_seeds=[m.train_config.get("seed") for m in models])


def recurrent_alone(loaded, examples, ratings) -> dict:
    """A trained model's recurrent path alone (its n-gram path left out), read as predict reads."""
    from reviewlstm.inference.predict import Predictor, rating_and_expected, read_distributions
    reader = Predictor(loaded)
    probs = read_distributions(loaded.model, [reader.piece_ids(e.text, e.tokens) for e in examples], recurrent_only=True)
    return scores(Split.ratings(examples), rating_and_expected(probs, ratings)[0], ratings)


def teachers(ds, split, teacher_dir, report, weight: float | None = None, seconds: float = 0.0) -> None:
    """A distillation teacher alone and as an ensemble (its distributions mixed with TF-IDF + LR's at
    `weight`, or, when None, at the weight distill would choose on dev), on dev and on the slice, read
    as the student reads them."""
    import numpy as np
    from reviewlstm.distillation.baseline import TfidfLR
    from reviewlstm.distillation.distill import _softmax
    from reviewlstm.training.loop import mixture_metrics, mixture_share
    from reviewlstm.distillation.teacher import Teacher, resolve_precision
    teacher = Teacher.load(teacher_dir)
    seconds = seconds or (teacher.info.trained or {}).get("seconds", 0.0)
    precision = resolve_precision("auto", next(teacher.parameters()).device)
    peer = TfidfLR.fit(Split.texts(split.kept), Split.ratings(split.kept), seed=0)
    parts = {}
    for part, examples in (("dev", split.dev), ("slice", split.held)):
        texts = Split.texts(examples)
        logits = teacher.logits([teacher.text(t.split(" ")) for t in texts], precision=precision)
        truth = np.asarray(Split.ratings(examples)) - ds.scale[0]
        parts[part] = (_softmax(logits), peer.proba(texts, ds.ratings), truth)
    if weight is None:
        weight = mixture_share(*parts["dev"], ds.ratings)[0]
    for name, w in ((f"the teacher alone ({teacher.info.source}, {teacher_dir})", 1.0),
                    (f"the ensemble teacher ({w_text(weight)})", weight)):
        d, h = (mixture_metrics(t, p, w, y, ds.ratings) for t, p, y in (parts["dev"], parts["slice"]))
        report(name, seconds, [d], [h])


def w_text(weight: float) -> str:
    return f"{weight:g} x teacher + {1 - weight:g} x TF-IDF + LR, the weight chosen on dev"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    data_args(ap)
    ap.add_argument("--seeds", type=int, default=3, help="runs per model, seeds 0..N-1")
    ap.add_argument("--distilled", nargs="*", default=[], metavar="DATA=RUN_DIR[,RUN_DIR...]",
                    help="distilled models of one teacher (one per seed) to score beside the peers on that "
                         "data set, with their teacher")
    ap.add_argument("--teacher", nargs="*", default=[], metavar="DATA=TEACHER_DIR[,TEACHER_DIR...]",
                    help="fine-tuned teachers to score, each alone and as the ensemble distill would make of it")
    ap.add_argument("--peers-only", action="store_true", help="the peers alone, without reviewlstm train")
    args = ap.parse_args()
    distilled = dict(d.split("=", 1) for d in args.distilled)
    teacher = dict(t.split("=", 1) for t in args.teacher)
    print("| data | model | dev acc | dev MAE | dev macro-F1 | slice acc | slice MAE | slice macro-F1 | slice QWK | train |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    rows = []
    for ds in datasets(args.data):
        rows += run(ds, list(range(args.seeds)), distilled.get(ds.name), args.threads, teacher.get(ds.name),
                    args.peers_only)
        if args.json:
            Path(args.json).parent.mkdir(parents=True, exist_ok=True)
            Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
