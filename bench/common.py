"""What every benchmark here shares: the data sets, the peers (implemented once), scoring and timing.

The data sets, by name (`--data NAME[,NAME]` in every quality benchmark):

| name | train | dev | notes |
|---|---|---|---|
| `sst-sentences` | SST-5 train, root sentences | SST-5 dev | `--no-phrases` |
| `sst-phrases` | SST-5 train, every labelled phrase | SST-5 dev | the default reading of a tree file |
| `amazon` | the Amazon musical reviews' train.csv | their dev.csv | skewed to 5 stars |
| `imdb-5k` | a fixed 5,000 of IMDB's rated reviews, 1-10 | 2,500 others | `--scale 1-10` |
| `imdb-5k-stars` | the same reviews as stars, ceil(rating / 2) | the same | no 3-star review exists |
| `imdb-1k`, `imdb-Nk`, `imdb-all` (and `-stars`) | the first 1,000 / N,000 / all 22,5xx of the same order | the same | the learning curve: each subset holds the smaller ones |
| `imdb-unrated` | IMDB's 50,000 unrated reviews, text only | - | transfer text for distill |

The IMDB files are made once from `../shared/data/imdb/train.csv.gz` into `runs/data/` (a review
goes to dev when sha256(id) mod 10 is 0; the 5,000 are the first by sha256(id) of the rest), so every
benchmark reads the same rows on every machine. Each model's untouched validation slice is the one
`reviewlstm train` sets aside from the training file (`reviewlstm.training.examples.split_holdout`): the peers
are trained on the same training reviews minus the same slice and scored on it.
"""
from __future__ import annotations

import argparse
import csv
import gzip
import hashlib
import os
import re
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from reviewlstm.distillation.baseline import NBSVM, TfidfLR
from reviewlstm.io.data import read_examples
from reviewlstm.inference.metrics import score
from reviewlstm.io.text import text_tokens
from reviewlstm.training.examples import split_holdout

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("REVIEWLSTM_SHARED_DATA", ROOT.parent / "shared" / "data"))
MADE = ROOT / "runs" / "data"
METRICS = ("n", "accuracy", "mae", "macro_f1", "qwk")


@dataclass(frozen=True)
class DataSet:
    name: str
    train: Path
    dev: Path
    phrases: bool = False
    scale: tuple[int, int] = (1, 5)

    @property
    def ratings(self) -> list[int]:
        return list(range(self.scale[0], self.scale[1] + 1))

    def train_args(self) -> dict:
        """The TrainConfig fields a user would give for this file (nothing else: defaults)."""
        return {"train": str(self.train), "dev": str(self.dev), "phrases": self.phrases,
                "scale_min": self.scale[0], "scale_max": self.scale[1]}


def _hash(text: str) -> int:
    return int(hashlib.sha256(text.encode("utf-8")).hexdigest()[:12], 16)


def imdb_files(subset: int | None = 5000) -> dict[str, Path]:
    """IMDB's fixed dev split and training subset (1-10 and stars), made once under runs/data/; subset
    None: every rated review outside dev."""
    out = MADE / (f"imdb-{subset // 1000}k" if subset else "imdb-all")
    names = {k: out / f"{k}.csv" for k in ("train", "dev", "train_stars", "dev_stars")}
    if all(p.exists() for p in names.values()):
        return names
    out.mkdir(parents=True, exist_ok=True)
    with gzip.open(SHARED / "imdb" / "train.csv.gz", "rt", encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    dev = [r for r in rows if _hash(r["id"]) % 10 == 0]
    rest = sorted((r for r in rows if _hash(r["id"]) % 10 != 0), key=lambda r: _hash(r["id"]))[:subset]
    for key, part, stars in (("train", rest, False), ("dev", dev, False),
                             ("train_stars", rest, True), ("dev_stars", dev, True)):
        tmp = names[key].with_suffix(".tmp")
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            w = csv.writer(f)
            w.writerow(["id", "text", "rating"])
            for r in part:
                rating = int(r["rating"])
                w.writerow([r["id"], r["text"], -(-rating // 2) if stars else rating])
        tmp.replace(names[key])
    return names


def imdb_unrated() -> Path:
    return SHARED / "imdb" / "unlabeled.csv.gz"


def datasets(names: str | list[str]) -> list[DataSet]:
    """The named data sets (see the module's docstring), IMDB's files made on first use."""
    names = names.split(",") if isinstance(names, str) else names
    sst, amazon = SHARED / "sst5", SHARED / "amazon-musical"
    known = {
        "sst-sentences": lambda: DataSet("sst-sentences", sst / "train.txt", sst / "dev.txt", False),
        "sst-phrases": lambda: DataSet("sst-phrases", sst / "train.txt", sst / "dev.txt", True),
        "amazon": lambda: DataSet("amazon", amazon / "train.csv", amazon / "dev.csv"),
        "imdb-5k": lambda: DataSet("imdb-5k", imdb_files()["train"], imdb_files()["dev"], scale=(1, 10)),
        "imdb-5k-stars": lambda: DataSet("imdb-5k-stars", imdb_files()["train_stars"], imdb_files()["dev_stars"]),
    }
    for name in names:  # the learning curve's subsets: imdb-1k, imdb-10k-stars, imdb-all, ...
        m = re.fullmatch(r"imdb-(\d+k|all)(-stars)?", name)
        if m and name not in known:
            subset = None if m[1] == "all" else int(m[1][:-1]) * 1000
            files = imdb_files(subset)
            known[name] = (lambda n=name, f=files, s=bool(m[2]):
                           DataSet(n, f["train_stars"], f["dev_stars"]) if s else
                           DataSet(n, f["train"], f["dev"], scale=(1, 10)))
    unknown = [n for n in names if n not in known]
    if unknown:
        raise SystemExit(f"unknown data set {', '.join(unknown)}: choose from {', '.join(known)}")
    return [known[n]() for n in names]


def sst_arg(ap: argparse.ArgumentParser) -> None:
    """--sst: the SST-5 folder (train.txt, dev.txt), for the benchmarks that read SST-5 alone."""
    ap.add_argument("--sst", default=str(SHARED / "sst5"), help="the SST-5 folder (default: the shared data's)")


def data_args(ap: argparse.ArgumentParser, default: str = "sst-phrases,amazon,imdb-5k,imdb-5k-stars") -> None:
    """The flags every quality benchmark shares."""
    ap.add_argument("--data", default=default, help="comma-separated data set names (bench/common.py)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", default=None, help="also write the rows here")


@dataclass
class Split:
    """A data set read as the student reads it: training reviews minus the slice, dev, the slice."""
    kept: list
    dev: list
    held: list

    @classmethod
    def read(cls, ds: DataSet, max_examples: int | None = None) -> "Split":
        """max_examples: the first N training examples only, as train's --max-examples takes them."""
        train = list(read_examples(ds.train, phrases=ds.phrases, scale=ds.scale))[:max_examples]
        kept, held = split_holdout(train, 0.1)
        return cls(kept, list(read_examples(ds.dev, scale=ds.scale)), held)

    @staticmethod
    def texts(examples) -> list[str]:
        """The student's tokens, lower-cased and joined: what the peers read."""
        return [" ".join(text_tokens(e.text, e.tokens, True)) for e in examples]

    @staticmethod
    def ratings(examples) -> list[int]:
        return [e.rating for e in examples]


def scores(true, pred, ratings) -> dict:
    s = score(list(true), [int(p) for p in pred], None, ratings)
    return {k: s[k] for k in METRICS}


# ---- the peers: each fit(texts, ratings, seed) -> predict(texts) -> ratings ----

def majority(texts, y, seed=0):
    commonest = int(np.bincount(y).argmax())
    return lambda xs: [commonest] * len(xs)


def tfidf_lr(texts, y, seed=0):
    """The package's own baseline (reviewlstm.distillation.baseline, the one distill checks its teacher against)."""
    return TfidfLR.fit(texts, y, seed=seed).predict


def nbsvm(texts, y, seed=0):
    """NBSVM (Wang & Manning 2012), the logistic-regression form (reviewlstm.distillation.baseline.NBSVM)."""
    return NBSVM.fit(texts, y, seed=seed).predict


def fasttext_supervised(texts, y, seed=0):
    import fasttext
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False, encoding="utf-8") as f:
        for t, label in zip(texts, y):
            f.write(f"__label__{label} {t}\n")
    try:
        model = fasttext.train_supervised(f.name, epoch=10, lr=0.5, wordNgrams=2, dim=50, verbose=0, seed=seed,
                                          thread=1)
    finally:
        Path(f.name).unlink()
    return lambda xs: [int(model.predict(x)[0][0].replace("__label__", "")) for x in xs]


PEERS = {"always the commonest rating": majority, "TF-IDF 1-2-grams + logistic regression": tfidf_lr,
         "NBSVM 1-2-grams (logistic regression)": nbsvm, "fastText supervised (2-grams)": fasttext_supervised}


def timed(fn, *args, **kwargs):
    """(result, seconds) of one call."""
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0


def mean_sd(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)
