"""reviewlstm's default recipe against its peers, side by side, on every data set here.

    pip install -e ".[bench]" -c constraints.txt
    python bench/peers.py [--data sst-sentences,sst-phrases,amazon] [--sst ../shared/data/sst5]
                          [--amazon ../shared/data/amazon-musical] [--json runs/peers.json] [--threads 2]

For each data set, one run of each on the same files, the same machine, one after another:
- reviewlstm: `reviewlstm train` with its defaults (only --train, --dev, --out, and --no-phrases for
  SST sentences): it sets its validation slice aside itself;
- TF-IDF word 1-2-grams + logistic regression (scikit-learn), and fastText supervised (word
  2-grams), both trained on the same training reviews minus the same slice
  (`reviewlstm.train.split_holdout`), reading the same tokens (reviewlstm's tokenizer, lower-cased);
- always the commonest training rating.
Reported on dev and on the slice that no choice touched: accuracy, MAE (of the predicted rating),
macro-F1, QWK, and training seconds.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from reviewlstm import api
from reviewlstm.baseline import TfidfLR
from reviewlstm.data import read_examples
from reviewlstm.metrics import score
from reviewlstm.text import text_tokens
from reviewlstm.train import TrainConfig, split_holdout

RATINGS = [1, 2, 3, 4, 5]


def datasets(args):
    sst, amazon = Path(args.sst), Path(args.amazon)
    return {"sst-sentences": (sst / "train.txt", sst / "dev.txt", False),
            "sst-phrases": (sst / "train.txt", sst / "dev.txt", True),
            "amazon": (amazon / "train.csv", amazon / "dev.csv", False)}


def tfidf_lr(texts, y):
    """The package's own baseline (reviewlstm.baseline, the one distill checks its teacher against)."""
    return TfidfLR.fit(texts, y).predict


def fasttext_supervised(texts, y):
    import fasttext
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False, encoding="utf-8") as f:
        for t, label in zip(texts, y):
            f.write(f"__label__{label} {t}\n")
    model = fasttext.train_supervised(f.name, epoch=10, lr=0.5, wordNgrams=2, dim=50, verbose=0, seed=0, thread=2)
    Path(f.name).unlink()
    return lambda xs: [int(model.predict(x)[0][0].replace("__label__", "")) for x in xs]


KEYS = ("n", "accuracy", "mae", "macro_f1", "qwk")


def scores(true, pred) -> dict:
    s = score(list(true), list(pred), None, RATINGS)
    return {k: s[k] for k in KEYS}


def add_data_args(ap: argparse.ArgumentParser) -> None:
    """The data sets' folders and the run's settings, shared with bench/recipe.py."""
    ap.add_argument("--sst", default="../shared/data/sst5")
    ap.add_argument("--amazon", default="../shared/data/amazon-musical")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", default=None)


def run(name, train_path, dev_path, phrases, args) -> list[dict]:
    train = list(read_examples(train_path, phrases=phrases))
    kept, held = split_holdout(train, 0.1)
    dev = list(read_examples(dev_path))

    def joined(examples):
        return [" ".join(text_tokens(e.text, e.tokens, True)) for e in examples]

    train_texts, train_y = joined(kept), [e.rating for e in kept]
    dev_texts, held_texts = joined(dev), joined(held)
    dev_y, held_y = [e.rating for e in dev], [e.rating for e in held]
    rows = []

    def report(model, seconds, d, h, **extra):
        rows.append({"data": name, "model": model, "train_seconds": round(seconds, 1), "dev": d, "slice": h, **extra})
        print(f"| {name} | {model} | {d['accuracy']:.1%} | {d['mae']:.3f} | {d['macro_f1']:.3f} | {d['qwk']:.3f} "
              f"| {h['accuracy']:.1%} | {h['mae']:.3f} | {h['macro_f1']:.3f} | {seconds:.0f} s |", flush=True)

    majority = int(np.bincount(train_y).argmax())
    report("always the commonest rating", 0.0, scores(dev_y, [majority] * len(dev_y)),
           scores(held_y, [majority] * len(held_y)))
    for model, fit in (("TF-IDF 1-2-grams + logistic regression", tfidf_lr), ("fastText supervised", fasttext_supervised)):
        t0 = time.perf_counter()
        predict = fit(train_texts, train_y)
        seconds = time.perf_counter() - t0
        report(model, seconds, scores(dev_y, predict(dev_texts)), scores(held_y, predict(held_texts)))
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        result = api.train(TrainConfig(overwrite=True, train=str(train_path), dev=str(dev_path), out=out, phrases=phrases,
                                       threads=args.threads, progress=False), log=lambda s: None)
        seconds = time.perf_counter() - t0
        loaded = api.load_model(out)
        assert result.holdout_metrics["n"] == len(held), "the slice must be the same as the peers'"
        ev = api.evaluate(dev_path, model=loaded)  # read as the model was trained
        report(f"reviewlstm default ({loaded.config.long_text}, {loaded.config.pooling} pooling, best epoch "
               f"{result.best_epoch})", seconds, {k: ev[k] for k in KEYS},
               {k: result.holdout_metrics[k] for k in KEYS},
               config=loaded.config.to_dict() | {"best_epoch": result.best_epoch})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="sst-sentences,sst-phrases,amazon")
    add_data_args(ap)
    args = ap.parse_args()
    sets = datasets(args)
    print("| data | model | dev acc | dev MAE | dev macro-F1 | dev QWK | slice acc | slice MAE | slice macro-F1 | train |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    rows = []
    for name in args.data.split(","):
        rows += run(name, *sets[name], args)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
