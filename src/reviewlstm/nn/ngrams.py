"""The n-gram path: TF-IDF word 1-2-grams and a linear model over them, beside the recurrent path.

Two readers that err differently are better together than either alone. The recurrent layer reads
word order (negation, contrast, a verdict at the end); a linear model over word unigrams and bigrams
weighs every telling phrase of a long review at once, and on a few thousand long reviews it is the
peer to beat. A model with an n-gram path rates a text from both distributions,

    p = share * p_recurrent + (1 - share) * p_ngrams

with `share` (ModelConfig.ngram_share) chosen on dev after training, by the rule that keeps a
checkpoint (accuracy, then NLL); share 1 is the recurrent path alone, and then no path is kept.

The features are those of scikit-learn's TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
over the model's own token ids: a word is its id a, a pair of neighbours (a, b) the key V + a*V + b
(V the vocabulary's size), so the path needs no vocabulary of its own and is saved with the
weights. Each text's features: tf = 1 + ln(count), times idf = ln((1 + n) / (1 + df)) + 1, scaled
to unit length; logits = coef @ x + intercept, a softmax over the ratings. Fitting uses
scikit-learn's LogisticRegression (C 2, L2), the same model as the TF-IDF + LR peer
(reviewlstm.distillation.baseline), which tests/nn/test_ngrams.py checks this path against.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

# a rating the training data never held: the linear model gives it (all but) no probability
_NEVER_SEEN = -30.0


def ngram_keys(ids, vocab_size: int) -> np.ndarray:
    """A text's token ids -> its n-gram keys, with repeats: every word, then every neighbouring pair."""
    a = np.asarray(ids, dtype=np.int64)
    return np.concatenate([a, vocab_size + a[:-1] * vocab_size + a[1:]])


class NgramPath(nn.Module):
    """Token ids -> logits over the ratings, linear in the text's TF-IDF 1-2-gram features.

    Buffers (saved with the model's weights):
        keys       (F,)    the known n-gram keys, sorted
        idf        (F,)    each key's inverse document frequency
        coef       (K, F)  the linear model's weights, a row per rating
        intercept  (K,)
    """

    def __init__(self, features: int, ratings: int, vocab_size: int):
        super().__init__()
        self.vocab_size = vocab_size
        self.register_buffer("keys", torch.zeros(features, dtype=torch.int64))
        self.register_buffer("idf", torch.zeros(features))
        self.register_buffer("coef", torch.zeros(ratings, features))
        self.register_buffer("intercept", torch.zeros(ratings))

    def features(self, id_lists):
        """(N, F) sparse TF-IDF rows (scipy CSR), one per text (a text with no known n-gram: zeros)."""
        from scipy.sparse import csr_matrix
        keys, idf = self.keys.cpu().numpy(), self.idf.cpu().numpy().astype(np.float64)
        rows, cols, vals = [], [], []
        for i, ids in enumerate(id_lists):
            found, counts = np.unique(ngram_keys(ids, self.vocab_size), return_counts=True)
            pos = np.searchsorted(keys, found)
            known = (pos < len(keys)) & (keys[np.minimum(pos, len(keys) - 1)] == found)
            pos, counts = pos[known], counts[known]
            x = (1.0 + np.log(counts)) * idf[pos]
            norm = np.sqrt((x * x).sum())
            rows.append(np.full(len(pos), i))
            cols.append(pos)
            vals.append(x / norm if norm > 0 else x)
        return csr_matrix((np.concatenate(vals) if vals else [], (np.concatenate(rows) if rows else [],
                                                                  np.concatenate(cols) if cols else [])),
                          shape=(len(id_lists), len(keys)))

    def logits(self, id_lists) -> np.ndarray:
        """(N, K) float64 logits."""
        x = self.features(id_lists)
        return np.asarray(x @ self.coef.cpu().numpy().T.astype(np.float64)) + self.intercept.cpu().numpy().astype(np.float64)

    def probabilities(self, id_lists) -> np.ndarray:
        """(N, K) float64: the linear model's distribution over the ratings."""
        z = self.logits(id_lists)
        z = np.exp(z - z.max(1, keepdims=True))
        return z / z.sum(1, keepdims=True)

    @classmethod
    def fit(cls, id_lists, targets, ratings: int, vocab_size: int, seed: int = 0) -> "NgramPath":
        """Fitted on the training texts' ids and their rating indices (0..ratings-1)."""
        from sklearn.linear_model import LogisticRegression
        per_text = [np.unique(ngram_keys(ids, vocab_size), return_counts=True) for ids in id_lists]
        keys, df = np.unique(np.concatenate([k for k, _ in per_text]), return_counts=True)
        path = cls(len(keys), ratings, vocab_size)
        path.keys.copy_(torch.from_numpy(keys))
        n = len(id_lists)
        path.idf.copy_(torch.from_numpy(np.log((1.0 + n) / (1.0 + df)) + 1.0))
        x = path.features(id_lists)
        y = np.asarray(targets)
        lr = LogisticRegression(C=2.0, max_iter=3000, random_state=seed).fit(x, y)
        classes = [int(c) for c in lr.classes_]
        coef = np.zeros((ratings, len(keys)))
        intercept = np.full(ratings, _NEVER_SEEN)
        if len(classes) == 2:  # a binary model is one logit: softmax over (0, z) is its sigmoid
            coef[classes[1]], intercept[classes[0]], intercept[classes[1]] = lr.coef_[0], 0.0, lr.intercept_[0]
        else:
            coef[classes], intercept[classes] = lr.coef_, lr.intercept_
        path.coef.copy_(torch.from_numpy(coef))
        path.intercept.copy_(torch.from_numpy(intercept))
        return path


def mix(recurrent: np.ndarray, ngrams: np.ndarray, share: float) -> np.ndarray:
    """share x the recurrent path's distributions + (1 - share) x the n-gram path's."""
    return share * recurrent + (1.0 - share) * ngrams
