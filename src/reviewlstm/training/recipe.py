"""What a run decides from its data before it trains: the recipe (reading, pooling, dropout when
"auto"), the network built on its vocabulary (GloVe, the start model it begins from), and the
targets it learns (gold ratings, a teacher's logits)."""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from reviewlstm.inference import artifact
from reviewlstm.training import transfer
from reviewlstm.nn.model import LONG_THRESHOLD, ModelConfig, RatingModel
from reviewlstm.training.config import TrainConfig
from reviewlstm.io.text import Vocab
from reviewlstm.training.examples import Data


@dataclass
class Recipe:
    """What training decided from the data, when the settings said "auto" (reading_rule)."""
    long_text: str
    pooling: str
    event_dropout: float | None
    why: str


# Pooling for models that read long texts whole: the final state of a 150-word pass remembers its
# last words best; the mean over every step reads them all (on the Amazon reviews it beat max and
# final pooling on dev and on the slice: docs/experiments/own-files.md, "Pooling for long reviews").
LONG_POOLING = "mean"


# Dropout on the word vectors for texts read sentence by sentence: 0.5 rather than the shared 0.3
# lifted the four-gate cell on SST-5's phrases on dev and on the untouched slice (3 seeds) and was level
# on its sentences; on long reviews read whole (the Amazon reviews) it did not help, so they keep the
# shared rate (docs/experiments/own-files.md, "Dropout on the word vectors").
SENTENCE_EVENT_DROPOUT = 0.5


def decide_recipe(cfg: TrainConfig, data: Data, log: Callable[[str], None]) -> Recipe:
    """How long texts are read, how the layer's outputs are pooled, the dropout on the word vectors."""
    recipe = Recipe(*reading_rule(cfg, data.train, data.train_tokens))
    log(recipe.why)
    return recipe


def build_model(cfg: TrainConfig, data: Data, recipe: Recipe, log: Callable[[str], None]):
    """(model, vocab, model config, embedding coverage): the vocabulary from the training tokens (plus
    frequent GloVe words), the network, its word vectors, and the trained model it starts from."""
    glove = None
    if cfg.embeddings == "glove":
        from reviewlstm.nn.embeddings import GloVe
        glove = GloVe.load()
    extra = list(glove.frequent_words(cfg.extra_glove_words)) if glove and cfg.extra_glove_words else []
    if cfg.transfer and cfg.transfer_words:
        words = transfer.transfer_words(cfg.transfer, cfg.transfer_words)
        extra = words + extra
        log(f"vocabulary: {len(words)} words seen at least {cfg.transfer_words} times in the transfer texts "
            "known beside the training words (those not in training learn from the teacher's labels alone)")
    vocab = Vocab.build(data.train_tokens, min_freq=cfg.min_freq, extra=extra)
    model_cfg = cfg.model_config(vocab_size=len(vocab), pooling=recipe.pooling, long_text=recipe.long_text,
                                 event_dropout=recipe.event_dropout)
    model = RatingModel(model_cfg)
    if cfg.use_init == "identity" and cfg.cell == "lstm":
        for cell in model.rnn.cells:
            cell.init_use_identity()
    coverage = None
    if glove is not None:
        counts: dict[str, int] = {}
        for toks in data.train_tokens:
            for t in toks:
                counts[t] = counts.get(t, 0) + 1
        matrix, coverage = glove.matrix_for(vocab, np.random.default_rng(cfg.seed), counts)
        with torch.no_grad():
            model.embedding.weight.copy_(torch.from_numpy(matrix))
        log(str(coverage))
    init_from = _pick_init(cfg, model_cfg, recipe.long_text)
    if init_from:
        log(_init_from(model, vocab, init_from) + (" (picked: reviews read whole)"
                                                   if cfg.init_from == "auto" else ""))
    elif not cfg.resume:  # what a model starts from is part of its story: said either way
        log(f"started from scratch: {'GloVe 6B 50d' if cfg.embeddings == 'glove' else 'random'} word vectors, a new "
            "layer and head" + (" (init_from auto takes the shipped start model only for reviews read whole, with "
                                "its layer's shapes and GloVe)" if cfg.init_from == "auto" else ""))
    model.embedding.weight.requires_grad_(not cfg.freeze_embeddings)
    return model, vocab, model_cfg, coverage


def _pick_init(cfg: TrainConfig, model_cfg: ModelConfig, long_text: str) -> str | None:
    if cfg.init_from != "auto":
        return cfg.init_from
    start = artifact.start_model_path()
    try:  # the start model's shape, from its config alone (its weights load only if they are used)
        shipped = json.loads((start / "config.json").read_text())["model"]
    except (OSError, ValueError, KeyError):
        return None
    # the layer's shapes: on another rating scale the head starts new (measured on IMDB's 1-10: docs/experiments/own-files.md)
    same_shape = all(getattr(model_cfg, k) == shipped.get(k) for k in
                     ("cell", "hidden", "num_layers", "bidirectional", "embed_dim"))
    return str(start) if long_text == "whole" and same_shape and cfg.embeddings == "glove" else None


def _init_from(model: RatingModel, vocab: Vocab, source: str) -> str:
    """Start from a trained model: its recurrent layer (it must have this model's shapes), its head
    when the rating scale is the same (on another scale the head starts new), and its embedding of
    every word both vocabularies share (a sentiment model already knows which words matter; a small
    file of one's own then only has to teach what is new)."""
    try:
        donor = artifact.load_model(None if source == "bundled" else source)
    except Exception as e:  # a missing or broken model: say which, in one line
        raise ValueError(f"--init-from {source}: {e}") from None
    own, theirs = model.state_dict(), donor.model.state_dict()
    # the recurrent layer (and attention), whole or not at all (a lone bias of the same size would
    # "fit" a model of another width); the head likewise, and only on the same scale
    layer = [k for k in theirs if k.startswith(("rnn.", "attention."))]
    head = [k for k in theirs if k.startswith("head.")]
    if not all(k in own and own[k].shape == theirs[k].shape for k in layer):
        raise ValueError(f"--init-from {source}: its layer and head do not fit this model (its cell "
                         f"{donor.config.cell}, hidden {donor.config.hidden}, "
                         f"{'bi' if donor.config.bidirectional else 'uni'}directional)")
    # a language model's head rates nothing (reviewlstm pretrain): its layer and words only
    same_scale = all(k in own and own[k].shape == theirs[k].shape for k in head) and \
        "pretraining" not in donor.metadata
    copied = layer + (head if same_scale else [])
    with torch.no_grad():
        for k in copied:
            own[k].copy_(theirs[k])
        words = [(i, donor.vocab.stoi[t]) for i, t in enumerate(vocab.itos) if i > 1 and t in donor.vocab.stoi]
        if words and donor.config.embed_dim == model.config.embed_dim:
            mine, its = (torch.tensor(x) for x in zip(*words))
            model.embedding.weight[mine] = donor.model.embedding.weight[its].to(model.embedding.weight.dtype)
    what = "its layer and head" if same_scale else \
        "its layer (a language model: a new head)" if "pretraining" in donor.metadata else \
        f"its layer (a new head: it rates {donor.config.scale_min}-{donor.config.scale_max})"
    return f"started from {donor.path}: {what} ({len(copied)} tensors), {len(words)}/{len(vocab) - 2} word vectors"


@dataclass
class Targets:
    """What the loop trains on: each text's ids, its gold rating index (-100: none, an augmented
    text), the teacher's logits when distilling, and the ratings' weights (class_weights)."""
    ids: list
    gold: torch.Tensor            # (N,) the training reviews' rating indices (the majority, the warnings)
    y: torch.Tensor               # (N + transfer,) the targets
    teacher_logits: torch.Tensor | None
    weights: torch.Tensor | None


def training_targets(cfg: TrainConfig, data: Data, vocab: Vocab, model_cfg: ModelConfig, device,
                     log: Callable[[str], None]) -> Targets:
    ids = [vocab.encode(t[:cfg.max_length]) for t in data.train_tokens]
    gold = torch.tensor([e.rating - cfg.scale_min for e in data.train])
    y, teacher_logits = gold, None
    if cfg.transfer:
        ids, y, teacher_logits, why_transfer = transfer.read_transfer_set(cfg.transfer, data.train_tokens, ids, gold, vocab,
                                                             cfg.max_length, len(model_cfg.ratings))
        log(why_transfer)
    weights = None
    if cfg.class_weights:  # inverse frequency, so rare ratings count as much as common ones
        freq = torch.bincount(gold, minlength=len(model_cfg.ratings)).float()
        weights = (freq.sum() / (len(freq) * freq.clamp(min=1))).to(device)
    return Targets(ids, gold, y, teacher_logits, weights)


# "auto" reads long texts whole when at least this share of the training reviews is long: the model
# then learned from long texts read whole, and reading them cut into sentences would be new to it.
LONG_SHARE = 0.2


def reading_rule(cfg: TrainConfig, examples: list, token_lists: list) -> tuple[str, str, float | None, str]:
    """(long_text, pooling, event_dropout, a line saying what was picked and why) from the settings
    and the data."""
    lengths: dict[int, int] = {}
    for e, tokens in zip(examples, token_lists):  # SST phrases: each sentence (its longest piece) counts once
        lengths[e.line] = max(lengths.get(e.line, 0), len(tokens))
    n = sorted(lengths.values()) or [0]
    share = sum(k > LONG_THRESHOLD for k in n) / len(n)
    long_text = cfg.long_text if cfg.long_text != "auto" else ("whole" if share >= LONG_SHARE else "sentences")
    pooling = cfg.pooling if cfg.pooling != "auto" else (LONG_POOLING if long_text == "whole" else "final")
    how = "whole" if long_text == "whole" else "sentence by sentence"
    why = f"reading: texts over {LONG_THRESHOLD} tokens are read {how}"
    if cfg.long_text == "auto":
        why += f" (picked: {share:.0%} of the training reviews are that long; median {n[len(n) // 2]} tokens)"
    why += f"; pooling {pooling}" + (f" (picked for {how} reading)" if cfg.pooling == "auto" else "")
    event_dropout = cfg.event_dropout
    if event_dropout == "auto":
        # --dropout 0 asks for no dropout at all: auto follows it
        event_dropout = SENTENCE_EVENT_DROPOUT if long_text == "sentences" and cfg.dropout > 0 else None
        why += f"; dropout on the word vectors {cfg.dropout if event_dropout is None else event_dropout} " \
               f"(picked for {how} reading)"
    truncated = sum(k > cfg.max_length for k in n)
    if truncated and long_text == "whole":
        why += f"; {truncated} training review(s) over {cfg.max_length} tokens are read up to token {cfg.max_length}"
    return long_text, pooling, event_dropout, why
