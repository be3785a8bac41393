"""A run's reviews: the training file less its validation slice (a hash of each text, so no seed
or setting moves it), dev (and, with mixture_on held-half, its held half), their tokens, and the
reading rule that decides from the training reviews how long texts are read."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from reviewlstm.io.data import BadRows, Columns, read_examples
from reviewlstm.nn.model import LONG_THRESHOLD
from reviewlstm.training.config import TrainConfig
from reviewlstm.inference.predict import reading_pieces
from reviewlstm.io.text import Vocab, text_tokens


@dataclass
class Data:
    """A run's examples and their tokens: training (less the slice), dev (the checks early stopping
    reads), the untouched slice, and the held half of dev (`mixing`: where the n-gram share and the
    temperature are chosen; empty when dev is not halved)."""
    train: list
    dev: list
    holdout: list
    train_tokens: list
    dev_tokens: list
    holdout_tokens: list
    bad: BadRows
    mixing: list = field(default_factory=list)
    mixing_tokens: list = field(default_factory=list)

    @property
    def choosing(self) -> tuple[list, list]:
        """(examples, tokens) where the end of a run chooses: the held half, or dev itself."""
        return (self.mixing, self.mixing_tokens) if self.mixing else (self.dev, self.dev_tokens)


# dev is halved (mixture_on "held-half", "cross-fit") only from this many reviews: below it each
# half is too small to choose a check, a share or a temperature on
MIXING_HALF_MIN = 200


def dev_halves(examples: list) -> np.ndarray:
    """(N,) bool: each review's half of dev for cross-fitting, by its text's hash (split_holdout's
    rule), so the same text always falls the same way."""
    return np.asarray([int(hashlib.sha256(e.text.encode("utf-8")).hexdigest()[:12], 16) < 0.5 * 16 ** 12
                       for e in examples], dtype=bool)


def split_holdout(examples: list, fraction: float) -> tuple[list, list]:
    """(kept, slice): the reviews whose text hashes into the lowest `fraction` go to the slice.

    Grouped by file line, so SST's phrases go wherever their sentence goes (the slice holds the
    sentences themselves, read as `predict` reads them); the same text always falls the same way, so
    a duplicated review cannot sit on both sides, and no seed or setting moves it."""
    if fraction <= 0:
        return examples, []
    by_line: dict[int, list] = {}
    for e in examples:
        by_line.setdefault(e.line, []).append(e)
    kept, held = [], []
    for group in by_line.values():
        root = max(group, key=lambda e: len(e.tokens) if e.tokens is not None else len(e.text))
        if int(hashlib.sha256(root.text.encode("utf-8")).hexdigest()[:12], 16) < fraction * 16 ** 12:
            held.append(root)
        else:
            kept += group
    return kept, held


def training_examples(cfg: TrainConfig, bad: BadRows) -> tuple[list, list]:
    """(the examples training learns from, the validation slice): the training file read as `cfg`
    says, cut at max_examples, the slice set aside (split_holdout). distill's teacher reads the same."""
    examples = read_rated(cfg.train, cfg, cfg.phrases, bad)
    if cfg.max_examples:
        examples = examples[:cfg.max_examples]
    kept, held = split_holdout(examples, cfg.holdout)
    if not kept:
        raise ValueError(f"{cfg.train}: no training examples" + (
            f" left after setting {len(held)} aside as the validation slice (holdout {cfg.holdout}): "
            "lower --holdout, or --holdout 0" if held else ""))
    return kept, held


def read_rated(path, cfg: TrainConfig, phrases: bool, bad: BadRows) -> list:
    """The rated examples of a training or dev file, read as `cfg` says (format, columns, scale,
    rating words, the bad-row policy); SST trees give their phrases too when `phrases`."""
    from reviewlstm.nn.model import parse_labels
    return list(read_examples(path, fmt=cfg.format, columns=Columns(cfg.text_column, cfg.rating_column),
                              scale=(cfg.scale_min, cfg.scale_max), require_rating=True, phrases=phrases,
                              on_bad="skip" if cfg.skip_bad_rows else "raise", bad=bad,
                              labels=parse_labels(cfg.labels) if cfg.labels else None))


def load_data(cfg: TrainConfig, log: Callable[[str], None]) -> Data:
    """Read the training and dev files and set the validation slice aside (split_holdout)."""
    bad = BadRows()
    train_ex, holdout_ex = training_examples(cfg, bad)
    taken = bad.columns_taken()  # before dev's file is read
    dev_ex = read_rated(cfg.dev, cfg, False, bad) if cfg.dev else []
    if bad.count:
        log(bad.summary())
    mixing_ex: list = []
    if cfg.mixture_on == "held-half" and len(dev_ex) >= MIXING_HALF_MIN and (cfg.ngram_path == "auto" or cfg.calibrate):
        mixing_ex, dev_ex = split_holdout(dev_ex, 0.5)
    tokens = [[text_tokens(e.text, e.tokens, cfg.lowercase) for e in part]
              for part in (train_ex, dev_ex, holdout_ex, mixing_ex)]
    data = Data(train_ex, dev_ex, holdout_ex, *tokens[:3], bad, mixing_ex, tokens[3])
    log(f"train: {len(train_ex)} examples from {cfg.train}" + (f" ({taken})" if taken else "") + (f"; dev: {len(dev_ex)} from {cfg.dev}" if cfg.dev else "")
        + (f" (and {len(mixing_ex)} more held back from early stopping, where the n-gram share and the temperature "
           "are chosen)" if mixing_ex else "")
        + (f"; validation slice: {len(holdout_ex)} reviews set aside ({cfg.holdout:.0%}, untouched until the end)"
           if holdout_ex else ""))
    return data


def reading_ids(token_lists, vocab: Vocab, long_text: str, max_length: int) -> list:
    """Each text's pieces as ids, read exactly as predict and evaluate will read them."""
    return [[vocab.encode(p) for p in reading_pieces(t, long_text, LONG_THRESHOLD, max_length)[0]]
            for t in token_lists]


