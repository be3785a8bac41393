"""From text to rating with a loaded model: tokenize, batch by length, read, aggregate long reviews."""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from reviewlstm.nn import ngrams
from reviewlstm.inference.artifact import LoadedModel
from reviewlstm.nn.model import LONG_TEXTS, RatingModel
from reviewlstm.io.text import is_word, text_tokens

# under this share of its tokens known to the vocabulary, a text's rating is mostly a guess from
# <unk>s (another language, only emoji or punctuation): the prediction says so
KNOWN_SHARE_WARNING = 0.5
_SENTENCE_END = re.compile(r"^(\.|!|\?|\.\.\.|!+|\?+)$")


@dataclass
class Prediction:
    rating: int                  # the most likely rating
    probabilities: list[float]   # one per rating on the scale, summing to 1
    expected_rating: float       # sum of rating x probability
    tokens: int                  # tokens in the text
    read_as: str                 # "whole", "sentences" (read sentence by sentence and averaged) or "truncated"
    known_share: float = 1.0     # share of the text's words (tokens with a letter or digit) the model knows
    warning: str | None = None   # set when the model could read little of the text
    ratings: list[int] = field(default_factory=list)  # the scale, in the order of `probabilities`
    # with a coverage asked: the run of neighbouring ratings that holds the true one with that
    # probability (conformal.py, calibrated on the model's validation slice); else None
    rating_set: list[int] | None = None
    coverage: float | None = None
    label: str | None = None     # the rating's word, for a model trained on ratings in words (else None)
    labels: list[str] | None = field(default=None, repr=False)  # every rating's word, in scale order

    def to_dict(self) -> dict:
        """The JSON form (CLI --json, REST): probabilities keyed by rating, [{rating, probability}, ...]."""
        out = asdict(self)
        out["probabilities"] = keyed(self.probabilities, self.ratings, self.labels)
        del out["ratings"], out["labels"]
        return out


def keyed(probabilities, ratings, labels: list[str] | None = None) -> list[dict]:
    """[{"rating": r, "probability": p}, ...] in the scale's order: the one shape every JSON answer
    gives a distribution in (each with its "label" too, for a model that rates in words)."""
    if len(ratings) != len(probabilities):
        raise ValueError(f"{len(probabilities)} probabilities for {len(ratings)} ratings")
    if labels:
        return [{"rating": int(r), "label": name, "probability": float(q)}
                for r, name, q in zip(ratings, labels, probabilities)]
    return [{"rating": int(r), "probability": float(q)} for r, q in zip(ratings, probabilities)]


def rating_and_expected(probs: np.ndarray, ratings) -> tuple[np.ndarray, np.ndarray]:
    """The most likely rating and the expected rating (sum of rating x probability) of
    distributions (..., K) over `ratings`: the one rule predict, evaluate, explain and training use."""
    r = np.asarray(ratings, dtype=np.float64)
    return np.asarray(ratings)[np.argmax(probs, axis=-1)], probs @ r


def known_words(tokens: list[str], vocab) -> tuple[int, int]:
    """(words the vocabulary knows, words): words are tokens with a letter or digit, so a text of
    punctuation or emoji alone has none, whatever the vocabulary holds of them."""
    words = [t for t in tokens if is_word(t)]
    return sum(t in vocab.stoi for t in words), len(words)


def known_warning(known: int, words: int) -> str | None:
    """The note a prediction carries when the model knows under KNOWN_SHARE_WARNING of its words."""
    if words and known / words >= KNOWN_SHARE_WARNING:
        return None
    if not words:
        return "the text has no words, only symbols: the rating is a guess"
    return (f"the model knows {known} of this text's {words} words ({known / words:.0%}): "
            "the rating is mostly a guess (another language?)")


def pad_batch(id_lists: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids (B, T) padded with 0, lengths (B,)); an empty list reads as one <unk>."""
    id_lists = [ids or [1] for ids in id_lists]
    lengths = np.fromiter((len(ids) for ids in id_lists), dtype=np.int64, count=len(id_lists))
    out = np.zeros((len(id_lists), int(lengths.max())), dtype=np.int64)
    for i, ids in enumerate(id_lists):  # numpy rows: a torch tensor per row costs more than the row
        out[i, :len(ids)] = ids
    return torch.from_numpy(out), torch.from_numpy(lengths)


@torch.inference_mode()
def predict_proba(model: RatingModel, id_lists: list[list[int]], batch_size: int = 128, logits: bool = False) -> np.ndarray:
    """(N, K) probabilities (the model's calibrated softmax), or with `logits` the raw logits. Batches
    hold texts of similar length so little time goes on padding; padded steps are masked, so a text
    gets the same answer alone or in any batch. 128 texts a batch: larger batches no longer keep a
    step's working set in a core's cache."""
    was_training = model.training
    if was_training:  # switching modes walks every submodule: not on every call of a service
        model.eval()
    device = next(model.parameters()).device
    order = sorted(range(len(id_lists)), key=lambda i: -len(id_lists[i]))  # longest first: what the fast path wants
    out = np.zeros((len(id_lists), len(model.config.ratings)), dtype=np.float32)
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        ids, lengths = pad_batch([id_lists[i] for i in idx])
        z = model(ids.to(device), lengths.to(device))
        out[idx] = (z.float() if logits else model.probabilities(z)).cpu().numpy()
    if was_training:
        model.train()
    return out


def split_sentences(tokens: list[str]) -> list[list[str]]:
    """Cut a token list after sentence-ending punctuation (and any closing quote or bracket)."""
    sentences, current = [], []
    for i, tok in enumerate(tokens):
        current.append(tok)
        nxt = tokens[i + 1] if i + 1 < len(tokens) else None
        if _SENTENCE_END.match(tok) and nxt not in ("''", "-RRB-", "'"):
            sentences.append(current)
            current = []
        elif tok in ("''", "-RRB-") and len(current) > 1 and _SENTENCE_END.match(current[-2]):
            sentences.append(current)
            current = []
    if current:
        sentences.append(current)
    return sentences


def reading_pieces(tokens: list[str], long_text: str, long_threshold: int, max_length: int):
    """The passes a text is read in: [tokens] whole, or its sentences when it is longer than
    long_threshold and long_text is "sentences"; each pass at most max_length tokens. Returns
    (pieces, read_as) with read_as "whole", "sentences" or "truncated". Prediction, evaluation,
    explanation and training's dev checks all read through here."""
    if long_text == "sentences" and len(tokens) > long_threshold:
        pieces, read_as = split_sentences(tokens), "sentences"
    else:
        pieces, read_as = [tokens], "whole"
    if any(len(p) > max_length for p in pieces):
        read_as = "truncated"
    return [p[:max_length] for p in pieces], read_as


def read_distributions(model: RatingModel, piece_ids: list[list[list[int]]], batch_size: int = 128,
                       recurrent_only: bool = False) -> np.ndarray:
    """(N, R) float64: each text's distribution, from the ids of its pieces: the recurrent path's,
    averaged over the pieces weighted by their length, mixed with the n-gram path's over the pieces
    together when the model has one (model.ngrams; `recurrent_only`: the recurrent path's alone)."""
    flat = [p for pieces in piece_ids for p in pieces]
    owner = np.repeat(np.arange(len(piece_ids)), [len(pieces) for pieces in piece_ids])
    weights = np.asarray([max(len(p), 1) for p in flat], dtype=np.float64)
    probs = predict_proba(model, flat, batch_size).astype(np.float64)
    total = np.zeros((len(piece_ids), probs.shape[1]))
    np.add.at(total, owner, probs * weights[:, None])
    total /= total.sum(1, keepdims=True)
    if model.ngrams is None or recurrent_only:
        return total
    whole = [[i for p in pieces for i in p] for pieces in piece_ids]
    return ngrams.mix(total, model.ngrams.probabilities(whole), model.config.ngram_share)


class Predictor:
    """A loaded model with its tokenizer and vocabulary: texts in, :class:`Prediction` out.

    Long texts (more than the model's `long_threshold` tokens) are read as the model was trained
    (its config's `long_text`, unless overridden): "sentences" reads each sentence on its own and
    averages their distributions, weighted by length; "whole" reads the text in one pass. Either
    way, at most config.max_length tokens are read in one pass: a longer pass is truncated, and the
    Prediction says so.
    """

    def __init__(self, loaded: LoadedModel, long_text: str | None = None, long_threshold: int | None = None,
                 batch_size: int = 128, coverage: float | None = None):
        self.loaded, self.model, self.vocab, self.config = loaded, loaded.model, loaded.vocab, loaded.config
        long_text = long_text or self.config.long_text
        if long_text not in LONG_TEXTS:
            raise ValueError(f"long_text must be one of {', '.join(LONG_TEXTS)}, got {long_text!r}")
        self.long_text, self.batch_size = long_text, batch_size
        self.long_threshold = long_threshold or self.config.long_threshold
        if coverage is not None and (isinstance(coverage, bool) or not isinstance(coverage, (int, float))):
            raise ValueError(f"coverage must be a number between 0 and 1 (e.g. 0.9), got {coverage!r}")
        self.coverage, self.set_threshold = coverage, None
        if coverage is not None:  # rating sets: the threshold for this coverage, from the model's calibration
            from reviewlstm.inference import conformal
            self.set_threshold = conformal.threshold(conformal.kept(loaded)["scores"], coverage)

    def tokens(self, text: str, pretokenized: list[str] | None = None) -> list[str]:
        return text_tokens(text, pretokenized, self.config.lowercase)

    def pieces(self, tokens: list[str]) -> tuple[list[list[str]], str]:
        """The passes this text is read in and how (`reading_pieces` under this model's rule)."""
        return reading_pieces(tokens, self.long_text, self.long_threshold, self.config.max_length)

    def piece_ids(self, text: str, pretokenized: list[str] | None = None) -> list[list[int]]:
        """The vocabulary ids of each pass this text is read in (what read_distributions takes)."""
        return [self.vocab.encode(p) for p in self.pieces(self.tokens(text, pretokenized))[0]]

    def predict(self, texts: list[str], pretokenized: list[list[str] | None] | None = None) -> list[Prediction]:
        token_lists = [self.tokens(t, pretokenized[i] if pretokenized else None) for i, t in enumerate(texts)]
        # every text becomes one or more pieces, each read in one pass
        piece_ids, modes, known = [], [], []
        for toks in token_lists:
            pieces, mode = self.pieces(toks)
            piece_ids.append([self.vocab.encode(p) for p in pieces])
            modes.append(mode)
            known.append(known_words([t for p in pieces for t in p], self.vocab))
        total = read_distributions(self.model, piece_ids, self.batch_size)
        out = []
        best, expected = rating_and_expected(total, self.config.ratings)
        sets = [None] * len(total)
        if self.set_threshold is not None:
            from reviewlstm.inference import conformal
            ratings = self.config.ratings
            sets = [ratings[lo:hi + 1] for lo, hi in (conformal.rating_set(p, self.set_threshold) for p in total)]
        for i, p in enumerate(total):
            k, words = known[i]  # of the tokens read (after any truncation)
            out.append(Prediction(rating=int(best[i]),
                                  probabilities=[float(x) for x in p],
                                  expected_rating=float(expected[i]),
                                  tokens=len(token_lists[i]), read_as=modes[i],
                                  known_share=round(k / words, 4) if words else 0.0,
                                  warning=known_warning(k, words), ratings=list(self.config.ratings),
                                  rating_set=sets[i], coverage=self.coverage,
                                  label=self.config.label_of(int(best[i])), labels=self.config.label_names))
        return out
