"""The recurrent layer taught to read reviews before it learns ratings: a language model (ULMFiT,
Howard & Ruder 2018; bidirectional as ELMo's, Peters et al. 2018).

    reviewlstm pretrain --texts unlabeled.csv.gz train.csv ... --out lm/
    reviewlstm train --train mine.csv --dev dev.csv --init-from lm/ --out model/

The texts are any review files the readers take (a text column; ratings, if any, are ignored),
tokenized as `train` tokenizes them, joined into one stream and cut into windows of `seq_len`
tokens. The rating model's own network (embedding -> `Recurrent`, both directions) reads each
window; the forward direction's output at step t predicts word t + 1, the backward direction's
predicts word t - 1, each through an adaptive softmax (Grave et al. 2017: the frequent words in a
small head, the rare ones in clusters), so a 60,000-word vocabulary trains on a CPU. Words outside
the vocabulary are <unk>, and <unk> is never a target.

The result is an ordinary model directory (the embedding and the layer; a head of no use, never
copied): `train --init-from` takes its layer and the vector of every word both vocabularies share,
as it takes any model's. Its metadata says what it read and its perplexity on held-out windows.
"""
from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
from torch import nn

from reviewlstm.inference import artifact
from reviewlstm.training.config import PretrainConfig


@dataclass
class PretrainResult:
    out: Path
    tokens: int               # tokens in the stream read
    steps: int
    perplexity: dict          # held-out windows: {"forward": ..., "backward": ...}
    seconds: float


class LanguageModel(nn.Module):
    """The rating model's network read as a language model: `net` (a RatingModel: its embedding and
    recurrent layer) and one adaptive softmax per direction.

    Inputs: ids (B, T) int64, every window full (no padding).
    Outputs: the mean negative log-likelihood of each direction's next word (forward: t + 1 from the
    words up to t; backward: t - 1 from the words from t on), <unk> targets left out."""

    def __init__(self, net, vocab_size: int, cutoffs: list[int], dropout: float):
        super().__init__()
        self.net = net
        H = net.config.hidden
        # clusters past a small vocabulary's end are dropped; one split in the middle at the least
        cuts = [c for c in cutoffs if c < vocab_size - 1] or [max(1, (vocab_size - 1) // 2)]
        self.forward_words = nn.AdaptiveLogSoftmaxWithLoss(H, vocab_size, cuts, div_value=4.0)
        self.backward_words = nn.AdaptiveLogSoftmaxWithLoss(H, vocab_size, cuts, div_value=4.0)
        self.drop = nn.Dropout(dropout)

    def forward(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        B, T = ids.shape
        events = self.drop(self.net.embed(ids))                                 # (B, T, E)
        lengths = torch.full((B,), T, dtype=torch.long)
        outputs = self.drop(self.net.rnn(events, lengths)[0])                   # (B, T, 2H)
        H = self.net.config.hidden
        ahead = outputs[:, :-1, :H].reshape(-1, H)                              # (B(T-1), H) reads up to t
        behind = outputs[:, 1:, H:].reshape(-1, H)                              # (B(T-1), H) reads from t
        return (self._nll(self.forward_words, ahead, ids[:, 1:].reshape(-1)),
                self._nll(self.backward_words, behind, ids[:, :-1].reshape(-1)))

    @staticmethod
    def _nll(head: nn.AdaptiveLogSoftmaxWithLoss, states: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        known = targets > 1  # neither <pad> nor <unk>
        return -head(states[known], targets[known]).output.mean()


def read_stream(cfg: PretrainConfig, log: Callable[[str], None]) -> tuple[list[list[str]], int]:
    """(every text's tokens, the number of tokens), the files read in order, up to max_tokens."""
    from reviewlstm.io.data import BadRows, read_examples
    from reviewlstm.io.text import text_tokens
    texts, n = [], 0
    for path in cfg.texts:
        bad, before = BadRows(), len(texts)
        for e in read_examples(path, require_rating=False, ratings=False, on_bad="skip", bad=bad, scale_hint=False):
            tokens = text_tokens(e.text, e.tokens, cfg.lowercase)
            if not tokens:
                continue
            if cfg.max_tokens and n + len(tokens) > cfg.max_tokens:
                tokens = tokens[:cfg.max_tokens - n]
            texts.append(tokens)
            n += len(tokens)
            if cfg.max_tokens and n >= cfg.max_tokens:
                break
        log(f"pretrain: {len(texts) - before:,} texts from {path}" + (f" ({bad.summary()})" if bad.count else ""))
        if cfg.max_tokens and n >= cfg.max_tokens:
            log(f"pretrain: stopped at --max-tokens {cfg.max_tokens:,}")
            break
    return texts, n


def windows(texts: list[list[str]], vocab, seq_len: int) -> np.ndarray:
    """The texts' ids end to end (each closed by END), cut into rows of seq_len: (N, seq_len) int64;
    the last partial window dropped."""
    ids = np.fromiter((i for tokens in texts for i in vocab.encode(tokens + [END])), dtype=np.int64)
    n = len(ids) // seq_len
    return ids[:n * seq_len].reshape(n, seq_len)


END = "</review>"  # between two texts: a word of its own, so a window that spans two says where one ends


def pretrain(cfg: PretrainConfig, log: Callable[[str], None] = print) -> PretrainResult:
    """Read the texts, build the vocabulary and the network, train, write the model directory."""
    cfg.validate()
    artifact.check_output(cfg.out)
    with artifact.OutputLock(cfg.out):
        return _pretrain(cfg, log)


def _pretrain(cfg: PretrainConfig, log: Callable[[str], None]) -> PretrainResult:
    from reviewlstm.nn.model import ModelConfig, RatingModel
    from reviewlstm.io.text import Vocab
    started = time.perf_counter()
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    texts, n_tokens = read_stream(cfg, log)
    counts = Counter(t for tokens in texts for t in tokens)  # GloVe's coverage is of running tokens too
    # train's rule (most frequent first, then alphabetical), cut at vocab_size, END beside <pad>, <unk>
    frequent = Vocab.build(texts, min_freq=cfg.min_freq).itos
    vocab = Vocab(frequent[:2] + [END] + [t for t in frequent[2:] if t != END][:cfg.vocab_size - 3])
    rows = windows(texts, vocab, cfg.seq_len)
    if len(rows) < 4:
        raise ValueError(f"{n_tokens} tokens make {len(rows)} window(s) of {cfg.seq_len}: too little text to pretrain on")
    rows = rows[rng.permutation(len(rows))]
    n_held = max(1, int(len(rows) * cfg.held_out))
    held, train_rows = rows[:n_held], rows[n_held:]
    known = float((train_rows > 1).mean())
    log(f"pretrain: {n_tokens:,} tokens, {len(vocab):,} words known ({known:.1%} of the tokens), "
        f"{len(train_rows):,} windows of {cfg.seq_len} to learn from, {n_held:,} held out")

    model_cfg = ModelConfig(vocab_size=len(vocab), embed_dim=cfg.embed_dim, hidden=cfg.hidden, bidirectional=True,
                            cell="lstm", pooling="mean", long_text="whole", scale_min=1, scale_max=2)
    net = RatingModel(model_cfg)
    if cfg.embeddings == "glove":
        from reviewlstm.nn.embeddings import GloVe
        matrix, coverage = GloVe.load().matrix_for(vocab, rng, counts)
        with torch.no_grad():
            net.embedding.weight.copy_(torch.from_numpy(matrix))
        log(f"pretrain: {coverage}")
    lm = LanguageModel(net, len(vocab), cfg.cutoff_list(), cfg.dropout)
    optimizer = torch.optim.Adam(lm.parameters(), lr=cfg.lr)
    steps = max(1, int(math.ceil(len(train_rows) / cfg.batch_size) * cfg.epochs))
    warm = max(1, steps // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: (s + 1) / warm if s < warm else max(0.05, (steps - s) / max(steps - warm, 1)))

    def batches() -> Iterator[np.ndarray]:
        while True:
            order = rng.permutation(len(train_rows))
            for i in range(0, len(order), cfg.batch_size):
                yield train_rows[order[i:i + cfg.batch_size]]

    from tqdm import tqdm
    bar = tqdm(total=steps, unit="step", disable=None if cfg.progress else True, dynamic_ncols=True)
    lm.train()
    seen, total = 0, 0.0
    feed = batches()
    for step in range(steps):
        ids = torch.from_numpy(next(feed))
        ahead, behind = lm(ids)
        loss = (ahead + behind) / 2
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(lm.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        total, seen = total + loss.item(), seen + 1
        bar.update(1)
        if (step + 1) % max(1, steps // 10) == 0 or step + 1 == steps:
            bar.set_postfix_str(f"loss {total / seen:.3f}")
            log(f"pretrain: step {step + 1:,}/{steps:,}, training NLL {total / seen:.3f} (perplexity "
                f"{math.exp(total / seen):.0f})")
            total, seen = 0.0, 0
    bar.close()
    perplexity = held_out_perplexity(lm, held, cfg.batch_size)
    seconds = time.perf_counter() - started
    log(f"pretrain: held-out perplexity forward {perplexity['forward']:.1f}, backward {perplexity['backward']:.1f} "
        f"({n_held:,} windows); {seconds:.0f} s")
    meta = {"pretraining": {"texts": [str(p) for p in cfg.texts], "tokens": n_tokens, "windows": len(train_rows),
                            "steps": steps, "held_out_perplexity": perplexity, "known_share": round(known, 4),
                            "seconds": round(seconds, 1), "settings": asdict(cfg)},
            "note": "a language model: its layer and word vectors are for train --init-from; its head rates nothing"}
    artifact.save(cfg.out, net.eval(), vocab, {"pretrain": asdict(cfg)}, meta)
    return PretrainResult(Path(cfg.out), n_tokens, steps, perplexity, seconds)


@torch.no_grad()
def held_out_perplexity(lm: LanguageModel, held: np.ndarray, batch_size: int) -> dict:
    """exp of the mean NLL per word over the held-out windows, each direction apart."""
    lm.eval()
    sums, n = np.zeros(2), 0
    for i in range(0, len(held), batch_size):
        ids = torch.from_numpy(held[i:i + batch_size])
        ahead, behind = lm(ids)
        k = len(ids)
        sums += np.array([float(ahead), float(behind)]) * k
        n += k
    lm.train()
    return {"forward": round(math.exp(sums[0] / n), 2), "backward": round(math.exp(sums[1] / n), 2)}
