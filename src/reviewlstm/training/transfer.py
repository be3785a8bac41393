"""Distillation's side of training: the transfer set `reviewlstm distill` writes (the teacher's logits
for every training review, then augmented and unrated texts with no gold rating) and the loss a
student learns from it. distill.py writes the set; train.py reads it when `TrainConfig.transfer` is set.

    transfer.jsonl(.gz)   one JSON object a line: {"tokens": [...], "logits": [K floats]}, plus
                          "augmented": true for a text with no gold rating
"""
from __future__ import annotations

import json

import torch
import torch.nn.functional as F

from reviewlstm.nn.model import ordinal_loss
from reviewlstm.io.text import Vocab

TOKEN_SEP = "\x1f"  # joins tokens into a lookup key (an SST token may hold a space)


def loss(logits, y, teacher, alpha: float, temperature: float, ordinal: bool = False, weights=None) -> torch.Tensor:
    """alpha x CE(gold) + (1 - alpha) x T^2 x KL(teacher_T || student_T) per text, averaged; texts with
    no gold rating (y = -100, augmented) take the teacher's term alone. T^2 keeps the soft term's
    gradients the same size whatever the temperature (Hinton et al. 2015)."""
    T = temperature
    soft = F.kl_div(F.log_softmax(logits / T, dim=1), F.log_softmax(teacher / T, dim=1), log_target=True,
                    reduction="none").sum(1) * T * T  # (B,)
    gold = y >= 0
    hard = F.cross_entropy(logits, y.clamp(min=0), weight=weights, reduction="none")  # (B,), used where gold
    loss = torch.where(gold, alpha * hard + (1 - alpha) * soft, soft).mean()
    if ordinal and gold.any():
        loss = loss + alpha * ordinal_loss(logits[gold], y[gold]) * gold.float().mean()
    return loss


def rows(path):
    """(line number, row) for each row of a transfer set, a row checked to hold tokens and logits."""
    import gzip
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        for line_no, line in enumerate(f, start=1):
            try:
                row = json.loads(line)
                row["tokens"], row["logits"]
            except (ValueError, KeyError, TypeError) as e:
                raise ValueError(f"{path}:{line_no}: not a transfer-set row ({e})") from None
            yield line_no, row


def transfer_words(path, min_count: int) -> list[str]:
    """The words of the transfer set's texts without a gold rating (augmented, unrated) seen at least
    `min_count` times there, most frequent first."""
    from collections import Counter
    counts = Counter(t for _, row in rows(path) if row.get("augmented") for t in row["tokens"])
    return [w for w, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if n >= min_count]


def read_transfer_set(path, train_tokens, train_ids, train_y, vocab: Vocab, max_length: int, classes: int):
    """The training reviews with the teacher's logits, then the augmented texts (no gold rating)."""
    labelled: dict[str, list[float]] = {}
    augmented_ids, augmented_logits = [], []
    for line_no, row in rows(path):
        tokens, logits = row["tokens"], row["logits"]
        if not isinstance(logits, list) or len(logits) != classes:
            raise ValueError(f"{path}:{line_no}: not a transfer-set row "
                             f"({len(logits) if isinstance(logits, list) else 'no'} logits for a {classes}-rating scale)")
        if row.get("augmented"):
            augmented_ids.append(vocab.encode(tokens[:max_length]))
            augmented_logits.append(logits)
        else:
            labelled[TOKEN_SEP.join(tokens)] = logits
    gold_logits = []
    for i, tokens in enumerate(train_tokens):
        found = labelled.get(TOKEN_SEP.join(tokens))
        if found is None:
            raise ValueError(f"{path}: no teacher logits for training example {i + 1} "
                             f"({' '.join(tokens)[:60]!r}): the transfer set was made from other data; "
                             "run reviewlstm distill again")
        gold_logits.append(found)
    ids = train_ids + augmented_ids
    y = torch.cat([train_y, torch.full((len(augmented_ids),), -100, dtype=train_y.dtype)])
    teacher = torch.tensor(gold_logits + augmented_logits, dtype=torch.float32)  # (N, K)
    why = (f"distilling: the teacher's logits for all {len(train_ids)} training examples and "
           f"{len(augmented_ids)} augmented texts ({path})")
    return ids, y, teacher, why
