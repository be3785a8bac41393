"""The network's settings, readable without torch: ModelConfig (saved beside the weights), the
choices its fields take, and the sizes a model may have. The command line builds every flag from
these without importing torch."""
from __future__ import annotations

import typing
from dataclasses import asdict, dataclass
from typing import Literal

from reviewlstm.options import check_value, hints

# A text longer than this many tokens is "long": read as the model was trained (ModelConfig.long_text)
LONG_THRESHOLD = 60

# the choices, as types: the settings dataclasses' fields use them (options.py reads them as choices)
Cell = Literal["lstm", "classic-lstm", "rnn"]  # cells.CELLS, the one registry (a test holds them equal)
Pooling = Literal["final", "max", "mean", "attention"]
POOLINGS = typing.get_args(Pooling)
LongText = Literal["sentences", "whole"]  # how a text over LONG_THRESHOLD tokens is read
LONG_TEXTS = typing.get_args(LongText)


def parse_labels(text: str) -> list[str]:
    """'negative, neutral, positive' -> the labels in order, lowest rating first: at least two, each
    named once (compared without case), none empty."""
    names = [n.strip() for n in str(text).split(",")]
    if len(names) < 2 or any(not n for n in names):
        raise ValueError(f"ratings {text!r}: give at least two labels, lowest first, separated by commas "
                         "(e.g. negative,neutral,positive)")
    if len({n.lower() for n in names}) != len(names):
        raise ValueError(f"ratings {text!r}: a label is named twice")
    unprintable = next((n for n in names if not n.isprintable()), None)
    if unprintable is not None:  # a newline or control character would cut every line that shows it
        raise ValueError(f"ratings {text!r}: the label {unprintable!r} holds a newline or control character")
    if len(names) > SIZE_LIMITS["ratings"]:
        raise ValueError(f"ratings: {len(names)} labels, above the most a model may have ({SIZE_LIMITS['ratings']})")
    return names


# The largest sizes a model may be built with, checked from the numbers before anything is allocated
# (a typo of --layers 100000 or --scale 1-1000000000 is one line, not the machine's memory): far above
# what a review model uses, far below what would exhaust a machine.
SIZE_LIMITS = {"ratings": 100, "num_layers": 16, "hidden": 8192, "embed_dim": 4096, "max_length": 100_000,
               "vocab_size": 10_000_000}


def check_sizes(**sizes: int) -> None:
    """ValueError naming the first size above SIZE_LIMITS ("ratings": the scale's count)."""
    for name, value in sizes.items():
        if value is not None and value > SIZE_LIMITS[name]:
            what = "the rating scale holds" if name == "ratings" else f"{name} is"
            raise ValueError(f"{what} {value:,}" + (" ratings" if name == "ratings" else "") +
                             f", above the most a model may have ({SIZE_LIMITS[name]:,})")


# the softmax temperatures a model may keep: calibration searches inside this range, and outside it
# the probabilities stop meaning anything (T -> 0: one rating at 1 and NaN beside it; T -> inf: uniform)
TEMPERATURE_RANGE = (0.01, 100.0)


@dataclass
class ModelConfig:
    """Everything needed to rebuild the network; saved in the model artifact beside the weights."""

    vocab_size: int
    embed_dim: int = 50
    cell: str = "lstm"
    hidden: int = 150
    num_layers: int = 1
    bidirectional: bool = True
    # between layers and before the head (and on the events unless event_dropout); training only.
    # These defaults are the training recipe's too (TrainConfig reads them from here)
    dropout: float = 0.3
    event_dropout: float | None = None  # on the events (embeddings) alone; None: the same as dropout
    pooling: str = "final"
    scale_min: int = 1
    scale_max: int = 5
    lowercase: bool = True        # GloVe 6B is lower-cased
    max_length: int = 400         # tokens read at once; longer texts are split (see predict.py)
    # How a text over long_threshold tokens is read, the way the model was trained: "sentences" (one
    # pass a sentence, distributions averaged: a model trained on sentences, as SST's) or "whole"
    # (one pass: a model trained on whole reviews). Saved with the weights, so predict, evaluate,
    # explain and the dev checks in training all read a text the same way.
    long_text: str = "sentences"
    long_threshold: int = LONG_THRESHOLD
    # ordered text labels, lowest first ("negative,neutral,positive"), when the training file rated in
    # words: the model rates 1..K and shows each rating's label back; None: numeric ratings
    labels: str | None = None
    # calibration: the logits are divided by this before the softmax (calibration.py: fitted on dev
    # at the end of training, or by `reviewlstm calibrate`); 1.0 is none. No rating moves with it
    temperature: float = 1.0
    # the n-gram path (ngrams.py): TF-IDF word 1-2-grams + a linear model, fitted after training and
    # mixed in when dev says the mixture is better. ngram_share is the recurrent path's share of the
    # rating's distribution (1.0: the recurrent path alone); ngram_features, how many n-grams it knows
    ngram_share: float = 1.0
    ngram_features: int = 0

    @property
    def ratings(self) -> list[int]:
        return list(range(self.scale_min, self.scale_max + 1))

    @property
    def label_names(self) -> list[str] | None:
        """The text labels in rating order, or None."""
        return parse_labels(self.labels) if self.labels else None

    def label_of(self, rating: int) -> str | None:
        names = self.label_names
        return names[rating - self.scale_min] if names else None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        if not isinstance(d, dict):
            raise ValueError(f"the model config must be a JSON object, got {type(d).__name__}")
        types = hints(cls)
        unknown = set(d) - set(types)
        if unknown:
            raise ValueError(f"unknown model config field(s): {', '.join(sorted(unknown))}")
        for name, value in d.items():  # types checked before anything is built from them
            check_value(name, value, types[name])
        return cls(**d)

    def validate(self) -> None:
        if self.pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {', '.join(POOLINGS)}, got {self.pooling!r}")
        if self.long_text not in LONG_TEXTS:
            raise ValueError(f"long_text must be sentences or whole, got {self.long_text!r}")
        if self.scale_max <= self.scale_min:
            raise ValueError(f"the rating scale {self.scale_min}..{self.scale_max} is empty")
        for name in ("dropout", "event_dropout"):
            if getattr(self, name) is not None and not 0 <= getattr(self, name) < 1:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        for name in ("vocab_size", "embed_dim", "hidden", "num_layers", "max_length", "long_threshold"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        check_sizes(ratings=self.scale_max - self.scale_min + 1, **{name: getattr(self, name) for name in (
            "vocab_size", "embed_dim", "hidden", "num_layers", "max_length")})
        if self.labels is not None and len(parse_labels(self.labels)) != self.scale_max - self.scale_min + 1:
            raise ValueError(f"labels {self.labels!r} do not name every rating of {self.scale_min}..{self.scale_max}")
        lo, hi = TEMPERATURE_RANGE
        if not (isinstance(self.temperature, (int, float)) and not isinstance(self.temperature, bool)
                and lo <= self.temperature <= hi):
            raise ValueError(f"temperature must be a number in [{lo:g}, {hi:g}] (calibrate fits it there), "
                             f"got {self.temperature!r}")
        if not 0 <= self.ngram_share <= 1 or self.ngram_features < 0 or (self.ngram_share < 1 and not self.ngram_features):
            raise ValueError(f"ngram_share must be in [0, 1] (1 without an n-gram path) and ngram_features >= 0, got "
                             f"{self.ngram_share!r} and {self.ngram_features!r}")
