"""The rating model: tokens -> embeddings -> Recurrent -> pooling -> a distribution over the scale.

Its seams are public so explanations need no copy of it: :meth:`RatingModel.embed` turns token ids
into events, :meth:`RatingModel.from_embeddings` runs the rest (and returns every gate on request).
"""
from __future__ import annotations

import contextlib
import functools
import threading

import torch
import torch.nn.functional as F
from torch import nn

from reviewlstm.nn.layers import Recurrent
from reviewlstm.nn.ngrams import NgramPath
from reviewlstm.nn.config import (LONG_TEXTS, LONG_THRESHOLD, POOLINGS, SIZE_LIMITS, TEMPERATURE_RANGE, Cell,
                                  LongText, ModelConfig, Pooling, check_sizes, parse_labels)

__all__ = ["weights_to_be_loaded", "LONG_TEXTS", "LONG_THRESHOLD", "POOLINGS", "SIZE_LIMITS", "TEMPERATURE_RANGE", "Cell", "LongText",
           "ModelConfig", "Pooling", "RatingModel", "check_sizes", "ordinal_loss", "parse_labels"]


_skipping = threading.local()


def _skippable(init):
    """torch.nn.init's `init`, a no-op in a thread inside `weights_to_be_loaded`."""
    @functools.wraps(init)
    def maybe(tensor, *args, **kwargs):
        return tensor if getattr(_skipping, "on", False) else init(tensor, *args, **kwargs)
    maybe.skippable = True
    return maybe


@contextlib.contextmanager
def weights_to_be_loaded():
    """Build a network whose weights are about to be loaded (or only measured, on the meta device):
    in this thread every torch.nn.init call is skipped while it is built. The random draws would be
    overwritten anyway, cost time on a large embedding, and on the meta device pull in torch's
    compiler. Other threads initialise as usual."""
    for name in dir(torch.nn.init):
        init = getattr(torch.nn.init, name)
        if name.endswith("_") and not name.startswith("_") and callable(init) and not getattr(init, "skippable", False):
            setattr(torch.nn.init, name, _skippable(init))
    _skipping.on = True
    try:
        yield
    finally:
        _skipping.on = False


class RatingModel(nn.Module):
    """Token ids (B, T) and lengths (B,) -> logits over the rating scale (B, K)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        config.validate()
        self.config = config
        self.embedding = nn.Embedding(config.vocab_size, config.embed_dim, padding_idx=0)
        self.rnn = Recurrent(config.cell, config.embed_dim, config.hidden, num_layers=config.num_layers,
                             bidirectional=config.bidirectional,
                             dropout=config.dropout if config.num_layers > 1 else 0.0)
        width = self.rnn.output_size
        self.attention = nn.Linear(width, 1) if config.pooling == "attention" else None
        self.dropout = nn.Dropout(config.dropout)
        self.event_dropout = nn.Dropout(config.dropout if config.event_dropout is None else config.event_dropout)
        self.head = nn.Linear(width, len(config.ratings))
        # beside the recurrent path, read by predict.read_distributions (not by forward: it is not a
        # network, and the mixture is of distributions)
        self.ngrams = NgramPath(config.ngram_features, len(config.ratings), config.vocab_size) \
            if config.ngram_features else None

    def embed(self, token_ids: torch.Tensor) -> torch.Tensor:
        """(B, T) ids -> (B, T, E) events."""
        return self.embedding(token_ids)

    def from_embeddings(self, events: torch.Tensor, lengths: torch.Tensor, return_gates: bool = False):
        """(B, T, E) events -> (B, K) logits [, gates as in Recurrent]."""
        # pooling the final state reads no outputs: the layer need not assemble them
        need_outputs = return_gates or self.config.pooling != "final"
        result = self.rnn(self.event_dropout(events), lengths, return_gates=return_gates, outputs=need_outputs)
        outputs, state = result[0], result[1]  # (B, T, H*D), fields (L*D, B, H)
        pooled = self.pool(outputs, state, lengths)  # (B, H*D)
        logits = self.head(self.dropout(pooled))
        return (logits, result[2]) if return_gates else logits

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """(B, K) logits -> the calibrated distribution over the scale: softmax(logits / temperature)."""
        return torch.softmax(logits.float() / self.config.temperature, dim=-1)

    def forward(self, token_ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.from_embeddings(self.embed(token_ids), lengths)

    def pool(self, outputs: torch.Tensor, state, lengths: torch.Tensor) -> torch.Tensor:
        kind = self.config.pooling
        if kind == "final":
            # the last layer's final state: forwards after the last word, backwards after the first
            D = self.rnn.directions
            return torch.cat(list(state.stm[-D:]), dim=1)  # (B, H*D)
        T = outputs.size(1)
        mask = torch.arange(T, device=outputs.device)[None, :] < lengths[:, None]  # (B, T)
        if kind == "mean":
            return outputs.sum(1) / lengths.clamp(min=1)[:, None].to(outputs.dtype)
        if kind == "max":
            return outputs.masked_fill(~mask[:, :, None], float("-inf")).amax(1).nan_to_num(0.0, neginf=0.0)
        scores = self.attention(outputs).squeeze(2).masked_fill(~mask, float("-inf"))  # (B, T)
        weights = torch.softmax(scores, dim=1).nan_to_num(0.0)
        return (weights[:, :, None] * outputs).sum(1)


def ordinal_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Squared earth mover's distance between the predicted and the true distribution over ordered
    ratings (Hou et al., 2016): off by two stars costs more than off by one, unlike cross-entropy."""
    probs = torch.softmax(logits, dim=1)
    cdf = probs.cumsum(1)
    true_cdf = F.one_hot(targets, logits.size(1)).to(probs.dtype).cumsum(1)
    return ((cdf - true_cdf) ** 2).sum(1).mean()
