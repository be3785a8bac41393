"""The five-second peer every rating model must beat: TF-IDF word 1-2-grams + logistic regression.

One definition, used where reviewlstm measures itself against it: `distill` checks its teacher
against it before the teacher's labels are used, and bench/peers.py reports it beside every model.
It reads the student's tokens (joined by spaces, already lower-cased by the student's rule), so it
sees what the student sees. A trained model's n-gram path (ngrams.py) is the same model over its ids.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class TfidfLR:
    """Fitted on (text, rating) pairs; `proba(texts)` is (N, len(ratings)) over `ratings` in order."""
    pipeline: object
    ratings: list[int]

    @classmethod
    def fit(cls, texts: list[str], ratings: list[int], seed: int = 0) -> "TfidfLR":
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        pipeline = make_pipeline(TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, lowercase=False,
                                                 token_pattern=r"\S+"),
                                 LogisticRegression(C=2.0, max_iter=3000, random_state=seed))
        pipeline.fit(texts, ratings)
        return cls(pipeline, sorted(set(int(r) for r in ratings)))

    def proba(self, texts: list[str], scale: list[int] | None = None) -> np.ndarray:
        """(N, K) probabilities over `scale` (default: the ratings seen in training); a rating of the
        scale never seen in training gets 0."""
        scale = scale or self.ratings
        seen = self.pipeline.predict_proba(texts)
        classes = [int(c) for c in self.pipeline.classes_]
        out = np.zeros((len(texts), len(scale)))
        for j, c in enumerate(classes):
            if c in scale:
                out[:, scale.index(c)] = seen[:, j]
        return out

    def predict(self, texts: list[str]) -> list[int]:
        return [int(p) for p in self.pipeline.predict(texts)]


@dataclass
class NBSVM:
    """NBSVM (Wang & Manning 2012, "Baselines and bigrams"), in its logistic-regression form:
    binary word 1-2-gram features scaled by each rating's log-count ratio r = log((p / |p|) / (q / |q|))
    (p: the smoothed feature counts of that rating's reviews, q: of the others'), one binary
    logistic regression per rating over its scaled features, their probabilities normalised. The same
    `fit` / `proba` / `predict` as TfidfLR, so the peers take either."""
    vectorizer: object
    ratios: np.ndarray        # (K, F): each rating's log-count ratio
    models: list              # K binary logistic regressions
    ratings: list[int]

    @classmethod
    def fit(cls, texts: list[str], ratings: list[int], seed: int = 0, alpha: float = 1.0,
            c: float = 1.0) -> "NBSVM":
        from sklearn.feature_extraction.text import CountVectorizer
        from sklearn.linear_model import LogisticRegression
        vectorizer = CountVectorizer(ngram_range=(1, 2), binary=True, lowercase=False, token_pattern=r"\S+")
        x = vectorizer.fit_transform(texts).tocsr().astype(np.float64)
        y = np.asarray(ratings)
        classes = sorted(set(int(r) for r in ratings))
        ratios, models = [], []
        for k in classes:
            pos, neg = y == k, y != k
            p = alpha + np.asarray(x[pos].sum(0)).ravel()
            q = alpha + np.asarray(x[neg].sum(0)).ravel()
            r = np.log((p / p.sum()) / (q / q.sum()))
            lr = LogisticRegression(C=c, max_iter=3000, random_state=seed)
            lr.fit(x.multiply(r).tocsr(), pos.astype(int))
            ratios.append(r)
            models.append(lr)
        return cls(vectorizer, np.stack(ratios), models, classes)

    def proba(self, texts: list[str], scale: list[int] | None = None) -> np.ndarray:
        scale = scale or self.ratings
        x = self.vectorizer.transform(texts).tocsr().astype(np.float64)
        each = np.stack([m.predict_proba(x.multiply(r).tocsr())[:, 1] for m, r in zip(self.models, self.ratios)], 1)
        each = each / np.maximum(each.sum(1, keepdims=True), 1e-12)
        out = np.zeros((len(texts), len(scale)))
        for j, c in enumerate(self.ratings):
            if c in scale:
                out[:, scale.index(c)] = each[:, j]
        return out

    def predict(self, texts: list[str]) -> list[int]:
        return [self.ratings[int(i)] for i in self.proba(texts, self.ratings).argmax(1)]
