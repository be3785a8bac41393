"""Why a rating: each word's contribution, what each gate did word by word, and how the prediction
moved as the review was read. Everything goes through the model's public seams (`embed`,
`from_embeddings`), never a copy of the model.

Contributions (to the expected rating, and to each rating's probability):
- integrated gradients (Sundararajan et al., 2017): the events (word embeddings) are scaled from 0
  to their value in `steps` steps; a word's contribution is its embedding times the average gradient
  along that path, summed over the embedding. They add up to f(text) - f(all-zero events).
- occlusion: how much the output drops when the word is left out of the text.

A long text is explained the way `predict` reads it (as the model was trained: its config's
long_text and long_threshold); read sentence by sentence (each
sentence read on its own, the distributions averaged by sentence length), so the explained rating is
the predicted one. Each sentence's contributions are then scaled by its weight in the average (they
still add up to the rating's change from all-zero events), gate traces run sentence after sentence
(the state starts afresh at each, as the model reads them), and the trajectory after a word is the
average over the sentences read so far, the current one up to that word.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from reviewlstm.inference.artifact import LoadedModel
from reviewlstm.inference.config import EXPLAIN_MAX_CHARS, METHODS
from reviewlstm.inference.predict import Predictor, pad_batch, rating_and_expected

# which of the cell's gate outputs answer to the four names, per cell
GATE_NAMES = {"lstm": ("learn", "forget", "remember", "use"), "classic-lstm": ("learn", "forget", "remember", "use"),
              "rnn": ("stm",)}
# how a person reads each trace: the seed's names for the four gates, and what the values are
GATE_LABELS = {
    "learn": "learn gate: N⊙i, what this word adds to the memory",
    "forget": "forget gate: LTM⊙f, the memory kept from before",
    "forget_gate": "forget gate f: the share of each memory unit kept (0 forgets, 1 keeps)",
    "remember": "remember gate: LTM, the long-term memory after this word",
    "use": "use gate: STM = U⊙V, what the cell outputs after this word",
    "stm": "STM: the RNN's state after this word",
}


@dataclass
class Explanation:
    text: str
    tokens: list[str]                    # the tokens read (after truncation)
    rating: int
    probabilities: list[float]
    expected_rating: float
    method: str
    contributions: list[float]           # per token, to the expected rating
    class_contributions: list[list[float]]  # per token, per rating on the scale (to its probability)
    ratings: list[int]
    trajectory: list[list[float]]        # the distribution over ratings after each word
    gates: dict = field(default_factory=dict)  # name -> {"mean": [T], "units": [[H] x T]} (last layer, forwards)
    ltm_norm: list[float] | None = None
    stm_norm: list[float] = field(default_factory=list)
    truncated: bool = False
    max_length: int = 0
    total_tokens: int = 0
    read_as: str = "whole"               # "whole", "sentences" or "truncated", as in Prediction
    sentences: list[int] = field(default_factory=list)  # tokens per piece read on its own
    text_chars: int = 0                  # characters in the text given
    explained_chars: int = 0             # characters explained: all, or the first max_chars (to a word's end)
    gate_labels: dict = field(default_factory=dict)  # gate name -> what a person should read it as
    labels: list[str] | None = None      # every rating's word, for a model that rates in words
    # the n-gram path's share of the distribution (a model with one: ngrams.py), else None; the
    # contributions and the trajectory are then mixed at the same shares as the probabilities
    ngram_share: float | None = None

    def to_dict(self) -> dict:
        """The JSON form: probabilities keyed by rating, as every JSON answer gives them."""
        from reviewlstm.inference.predict import keyed
        out = asdict(self)
        out["probabilities"] = keyed(self.probabilities, self.ratings, self.labels)
        return out


def _expected(probs: torch.Tensor, ratings: torch.Tensor) -> torch.Tensor:
    return probs @ ratings


def explain(loaded: LoadedModel, text: str, method: str = "integrated_gradients", steps: int = 32,
            gates: bool = True, trajectory: bool = True, pretokenized: list[str] | None = None,
            long_text: str | None = None, long_threshold: int | None = None,
            max_chars: int | None = EXPLAIN_MAX_CHARS, on_piece=None) -> Explanation:
    """Explain `text` as `predict` reads it. A text over `max_chars` characters (None: no limit) is
    explained up to the end of the last word that fits, and `explained_chars` says where; the rating
    explained is then that part's. on_piece(done, total) is called after each piece (sentence) read."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    reader = Predictor(loaded, long_text=long_text, long_threshold=long_threshold)  # predict's reading rule
    model, cfg = loaded.model, loaded.config
    model.eval()
    given = len(text)
    if max_chars is not None and given > max_chars and pretokenized is None:
        text = cut_at_word(text, max_chars)
    all_tokens = reader.tokens(text, pretokenized)
    if not all_tokens:
        raise ValueError("the text has no words to explain")
    # the pieces `predict` would read (Predictor.predict), each at most max_length tokens
    pieces, read_as = reader.pieces(all_tokens)
    parts = []
    for p in pieces:
        parts.append(_explain_piece(loaded, p, method, steps, trajectory))
        if on_piece is not None:
            on_piece(len(parts), len(pieces))
    weights = np.array([len(p) for p in pieces], dtype=np.float64)
    share = weights / weights.sum()  # each piece's weight in the averaged distribution
    probs = sum(w * part["probs"] for w, part in zip(share, parts))
    contrib = [c * w for part, w in zip(parts, share) for c in part["contrib"]]
    class_contrib = [[c * w for c in row] for part, w in zip(parts, share) for row in part["class_contrib"]]
    traj = []
    if trajectory:  # sentences read so far, the current one up to this word, averaged by length
        done, done_w = np.zeros_like(probs), 0.0
        for part, piece in zip(parts, pieces):
            for k, p in enumerate(part["trajectory"], start=1):
                traj.append(((done + k * p) / (done_w + k)).tolist())
            done, done_w = done + len(piece) * part["probs"], done_w + len(piece)
    tokens = [t for p in pieces for t in p]
    if model.ngrams is not None:  # the n-gram path, mixed in at its share as predict mixes it
        share = cfg.ngram_share
        ng = _ngram_part(loaded, tokens, method, steps, trajectory)
        probs = share * probs + (1 - share) * ng["probs"]
        contrib = [share * a + (1 - share) * b for a, b in zip(contrib, ng["contrib"])]
        class_contrib = [[share * a + (1 - share) * b for a, b in zip(ra, rb)]
                         for ra, rb in zip(class_contrib, ng["class_contrib"])]
        traj = [(share * np.asarray(a) + (1 - share) * b).tolist() for a, b in zip(traj, ng["trajectory"])]
    best, expected = rating_and_expected(probs, cfg.ratings)
    out = Explanation(text=text, tokens=tokens, rating=int(best), probabilities=probs.tolist(),
                      expected_rating=float(expected),
                      method=method, contributions=contrib, class_contributions=class_contrib, ratings=cfg.ratings,
                      trajectory=traj, truncated=read_as == "truncated", max_length=cfg.max_length,
                      total_tokens=len(all_tokens), read_as=read_as, sentences=[len(p) for p in pieces],
                      text_chars=given, explained_chars=len(text), labels=cfg.label_names,
                      ngram_share=round(1 - cfg.ngram_share, 4) if model.ngrams is not None else None)
    if gates:
        acts = {name: torch.cat([part["gates"][name] for part in parts], dim=3) for name in parts[0]["gates"]}
        _gate_traces(out, acts, cfg.cell)
    return out


def cut_at_word(text: str, max_chars: int) -> str:
    """The text's first max_chars characters, back to the end of the last whole word in them."""
    head = text[:max_chars]
    if max_chars < len(text) and not text[max_chars].isspace():
        space = max(head.rfind(" "), head.rfind("\n"), head.rfind("\t"))
        if space > 0:
            head = head[:space]
    return head.rstrip()


def _explain_piece(loaded: LoadedModel, tokens: list[str], method: str, steps: int, trajectory: bool) -> dict:
    """One piece read in one pass: its distribution, contributions, prefix distributions and gates."""
    model, cfg = loaded.model, loaded.config
    ids, lengths = pad_batch([loaded.vocab.encode(tokens)])
    ratings = torch.tensor(cfg.ratings, dtype=torch.float32)
    with torch.no_grad():
        events = model.embed(ids)  # (1, T, E)
        logits, gate_acts = model.from_embeddings(events, lengths, return_gates=True)
        probs = model.probabilities(logits)[0]
    if method == "integrated_gradients":
        contrib, class_contrib = _integrated_gradients(model, events, lengths, ratings, steps)
    else:
        contrib, class_contrib = _occlusion(model, ids[0], probs, ratings)
    return {"probs": probs.double().numpy(), "contrib": contrib, "class_contrib": class_contrib,
            "trajectory": [np.asarray(p) for p in _trajectory(model, ids[0])] if trajectory else [],
            "gates": gate_acts}


def _ngram_part(loaded: LoadedModel, tokens: list[str], method: str, steps: int, trajectory: bool) -> dict:
    """The n-gram path's distribution over the whole text, each token's contributions and the
    distribution after each word. Integrated gradients run over the text's n-gram features (from
    none to their values: they add up to f(text) - f(no n-gram)), each n-gram's share split evenly
    over its occurrences and, for a pair, over its two words; occlusion reads the text without each word."""
    path, cfg = loaded.model.ngrams, loaded.config
    ids = loaded.vocab.encode(tokens)
    T, V = len(ids), cfg.vocab_size
    ratings = torch.tensor(cfg.ratings, dtype=torch.float64)
    probs = path.probabilities([ids])[0]
    if method == "integrated_gradients":
        x = path.features([ids])  # (1, F) sparse: the text's known n-grams
        pos, vals = x.indices, torch.from_numpy(x.data)
        w = path.coef.double()[:, torch.from_numpy(pos)]  # (K, n)
        alphas = (torch.arange(1, steps + 1, dtype=torch.float64) / steps)[:, None]  # (S, 1)
        xs = (alphas * vals).requires_grad_(True)  # (S, n)
        p = torch.softmax(xs @ w.T + path.intercept.double(), dim=1)  # (S, K)
        outputs = torch.cat([_expected(p, ratings)[:, None], p], dim=1)  # (S, 1 + K)
        per_feature = torch.stack([vals * torch.autograd.grad(outputs[:, k].sum(), xs, retain_graph=True)[0].mean(0)
                                   for k in range(outputs.shape[1])], 1).detach().numpy()  # (n, 1 + K)
        keys = path.keys.cpu().numpy()[pos]
        a = np.asarray(ids, dtype=np.int64)
        occurrences = [(np.flatnonzero(a == key), 1.0) if key < V else
                       (np.flatnonzero((a[:-1] == (key - V) // V) & (a[1:] == (key - V) % V)), 0.5) for key in keys]
        contrib = np.zeros((T, per_feature.shape[1]))
        for row, (at, half) in zip(per_feature, occurrences):
            for i in at:  # a word: its place; a pair at i: words i and i + 1, half each
                contrib[i] += row / len(at) * half
                if half < 1:
                    contrib[i + 1] += row / len(at) * half
    else:
        left_out = path.probabilities([ids[:i] + ids[i + 1:] for i in range(T)]) if T > 1 else \
            np.full((1, len(cfg.ratings)), 1 / len(cfg.ratings))
        full = np.concatenate([[probs @ ratings.numpy()], probs])
        contrib = full[None, :] - np.concatenate([left_out @ ratings.numpy()[:, None], left_out], axis=1)
    traj = path.probabilities([ids[:t] for t in range(1, T + 1)]) if trajectory else []
    return {"probs": probs, "contrib": contrib[:, 0].tolist(), "class_contrib": contrib[:, 1:].tolist(),
            "trajectory": list(traj)}


def _integrated_gradients(model, events, lengths, ratings, steps):
    """(contributions to the expected rating (T,), to each rating's probability (T, K))."""
    K = len(ratings)
    alphas = (torch.arange(1, steps + 1, dtype=torch.float32) / steps)[:, None, None]  # (S, 1, 1)
    path = (alphas * events).requires_grad_(True)  # (S, T, E): from zero events to the real ones
    probs = model.probabilities(model.from_embeddings(path, lengths.expand(steps)))  # (S, K)
    outputs = torch.cat([_expected(probs, ratings)[:, None], probs], dim=1)  # (S, 1 + K)
    attributions = []
    for k in range(1 + K):
        (grad,) = torch.autograd.grad(outputs[:, k].sum(), path, retain_graph=k < K)
        attributions.append((events[0] * grad.mean(0)).sum(-1))  # (T,)
    a = torch.stack(attributions, 1).detach()  # (T, 1 + K)
    return a[:, 0].tolist(), a[:, 1:].tolist()


@torch.no_grad()
def _occlusion(model, ids, probs, ratings):
    T = ids.numel()
    if T == 1:
        return [float(_expected(probs, ratings)) - float(ratings.mean())], [(probs - 1 / len(ratings)).tolist()]
    variants = [torch.cat([ids[:i], ids[i + 1:]]) for i in range(T)]  # the text without word i
    batch, lengths = pad_batch([v.tolist() for v in variants])
    p = model.probabilities(model(batch, lengths))  # (T, K)
    return (_expected(probs, ratings) - _expected(p, ratings)).tolist(), (probs[None, :] - p).tolist()


@torch.no_grad()
def _trajectory(model, ids) -> list[list[float]]:
    """The distribution after each word: the model's answer to every prefix, all in one batch."""
    T = ids.numel()
    batch = ids[None, :].expand(T, T).clone()  # (T, T): row t is the prefix of length t + 1
    lengths = torch.arange(1, T + 1)
    batch[torch.arange(T)[None, :] >= lengths[:, None]] = 0
    return model.probabilities(model(batch, lengths)).tolist()


def _gate_traces(out: Explanation, acts: dict, cell: str) -> None:
    """Last layer, forward direction: every unit and the mean over units, word by word."""
    out.gate_labels = {name: GATE_LABELS[name] for name in (*GATE_NAMES[cell], *(("forget_gate",) if cell != "rnn" else ()))}
    for name in GATE_NAMES[cell]:
        g = acts[name][-1, 0, 0]  # (T, H)
        out.gates[name] = {"mean": g.mean(1).tolist(), "units": np.round(g.numpy(), 4).tolist()}
    if cell != "rnn":
        out.ltm_norm = acts["remember"][-1, 0, 0].norm(dim=1).tolist()
        out.stm_norm = acts["use"][-1, 0, 0].norm(dim=1).tolist()
        out.gates["forget_gate"] = {"mean": acts["f"][-1, 0, 0].mean(1).tolist(),
                                    "units": np.round(acts["f"][-1, 0, 0].numpy(), 4).tolist()}
    else:
        out.stm_norm = acts["stm"][-1, 0, 0].norm(dim=1).tolist()
