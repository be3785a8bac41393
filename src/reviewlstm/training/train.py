"""Training, as one story: config, seed, data (a validation slice set aside), vocabulary,
embeddings, model, optimizer, then the loop that evaluates on dev during every epoch and keeps the
best checkpoint, and last the slice, scored once on the kept model.

The slice (`holdout`, a tenth of the training reviews by default) is chosen by a hash of each
review's text, so no seed or setting moves it, and it is scored only after training: no choice
(checkpoint, early stop) ever sees it. Dev picks the checkpoint, so dev's figure is optimistic by
the picking; the slice's is not.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import random
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from reviewlstm.inference import artifact, calibration, conformal, metrics
from reviewlstm.training import batching, checkpoint, distributed, loop, transfer
from reviewlstm.nn import fourgate
from reviewlstm.io.data import BadRows, Columns, read_examples
from reviewlstm.nn.model import LONG_THRESHOLD, ModelConfig, RatingModel, ordinal_loss
from reviewlstm.nn.ngrams import NgramPath, mix
from reviewlstm.training.config import TrainConfig
from reviewlstm.inference.predict import pad_batch, rating_and_expected, read_distributions, reading_pieces
from reviewlstm.io.text import Vocab, text_tokens


@dataclass
class TrainResult:
    out: Path
    best_epoch: float
    dev_metrics: dict | None
    history: list = field(default_factory=list)
    seconds: float = 0.0
    bad_rows: BadRows | None = None
    holdout_metrics: dict | None = None


# "auto" reads long texts whole when at least this share of the training reviews is long: the model
# then learned from long texts read whole, and reading them cut into sentences would be new to it.
LONG_SHARE = 0.2
# Pooling for models that read long texts whole: the final state of a 150-word pass remembers its
# last words best; the mean over every step reads them all (on the Amazon reviews it beat max and
# final pooling on dev and on the slice: docs/experiments/own-files.md, "Pooling for long reviews").
LONG_POOLING = "mean"
# Dropout on the word vectors for texts read sentence by sentence: 0.5 rather than the shared 0.3
# lifted the four-gate cell on SST-5's phrases on dev and on the untouched slice (3 seeds) and was level
# on its sentences; on long reviews read whole (the Amazon reviews) it did not help, so they keep the
# shared rate (docs/experiments/own-files.md, "Dropout on the word vectors").
SENTENCE_EVENT_DROPOUT = 0.5


def average_weights(states: list[dict]) -> dict:
    """The element-wise mean of several state dicts of one model (in float64, then back to each
    tensor's own dtype)."""
    return {k: torch.stack([s[k].double() for s in states]).mean(0).to(states[0][k].dtype) for k in states[0]}


def dev_halves(examples: list) -> np.ndarray:
    """(N,) bool: each review's half of dev for cross-fitting, by its text's hash (split_holdout's
    rule), so the same text always falls the same way."""
    return np.asarray([int(hashlib.sha256(e.text.encode("utf-8")).hexdigest()[:12], 16) < 0.5 * 16 ** 12
                       for e in examples], dtype=bool)


def split_holdout(examples: list, fraction: float) -> tuple[list, list]:
    """(kept, slice): the reviews whose text hashes into the lowest `fraction` go to the slice.

    Grouped by file line, so SST's phrases go wherever their sentence goes (the slice holds the
    sentences themselves, read as `predict` reads them); the same text always falls the same way, so
    a duplicated review cannot sit on both sides, and no seed or setting moves it."""
    if fraction <= 0:
        return examples, []
    by_line: dict[int, list] = {}
    for e in examples:
        by_line.setdefault(e.line, []).append(e)
    kept, held = [], []
    for group in by_line.values():
        root = max(group, key=lambda e: len(e.tokens) if e.tokens is not None else len(e.text))
        if int(hashlib.sha256(root.text.encode("utf-8")).hexdigest()[:12], 16) < fraction * 16 ** 12:
            held.append(root)
        else:
            kept += group
    return kept, held


def train(cfg: TrainConfig, log: Callable[[str], None] = print) -> TrainResult:
    """Train, keep the best dev check and score the slice; see the module's docstring. `cfg.out` is
    checked before anything trains (a directory holding files that are not a model's is refused)
    and locked while this run writes there (a second run into it fails at once)."""
    cfg.validate()
    artifact.check_output(cfg.out)
    if os.environ.get("RANK", "0") != "0":  # torchrun's other ranks never write the model
        return _train(cfg, log)
    with artifact.OutputLock(cfg.out):
        return _train(cfg, log)


def _train(cfg: TrainConfig, log: Callable[[str], None]) -> TrainResult:
    """The story of a run, step by step: each step below is a function of its own."""
    started = time.perf_counter()
    run = start_run(cfg, log)
    log = run.log
    data = load_data(cfg, log)
    recipe = decide_recipe(cfg, data, log)
    model, vocab, model_cfg, coverage = build_model(cfg, data, recipe, log)
    model.to(run.device)
    # AdamW, no weight decay on embeddings (rows of words absent from a batch, or from training
    # altogether, would otherwise shrink towards zero for no reason) nor on biases; fused: one pass
    # over each parameter per step, where the per-tensor loop makes several over the embedding's
    # million-odd weights, most of which the batch never touched
    optimizer = loop.adamw(model, cfg.lr, cfg.weight_decay, fused=True,
                           decays=lambda name, p: p.dim() > 1 and not name.startswith("embedding"))
    targets = training_targets(cfg, data, vocab, model_cfg, run.device, log)
    dev_ids = reading_ids(data.dev_tokens, vocab, recipe.long_text, cfg.max_length)  # read as predict will
    fitted = fit(cfg, run, data, targets, dev_ids, model, vocab, model_cfg, optimizer, coverage, recipe, started, log)
    if not run.d.main:  # rank 0 writes the kept model and scores the slice; the others are done
        distributed.barrier(run.d)
        distributed.teardown(run.d)
        return TrainResult(Path(cfg.out), fitted.selection.best_epoch, None, fitted.history, fitted.seconds, data.bad,
                           None)
    return finish(cfg, run, data, recipe, model, vocab, model_cfg, dev_ids, fitted, log)


@dataclass
class Run:
    """Where a run trains: its device, its processes (one, or those torchrun started), its log."""
    device: torch.device
    d: distributed.Dist
    log: Callable[[str], None]


def start_run(cfg: TrainConfig, log: Callable[[str], None]) -> Run:
    """Seed everything (the same config and data give the same model), pick the device, join the
    other processes if torchrun started several (reviewlstm.training.distributed says the rules)."""
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    device = torch.device("cuda" if cfg.device == "auto" and torch.cuda.is_available() else
                          "cpu" if cfg.device == "auto" else cfg.device)
    out = Path(cfg.out)
    if (out / "config.json").exists() and not (cfg.resume or cfg.overwrite):
        raise ValueError(f"{out}: a model is already there: pass --overwrite to replace it "
                         "(or --resume to go on with its run)")
    d = distributed.setup(device)
    device = distributed.device_for(d, device)
    if d.on and cfg.batch_size % d.world:
        raise ValueError(f"batch_size {cfg.batch_size} is the global batch and must divide among the {d.world} "
                         f"processes: use a multiple of {d.world}")
    if cfg.threads or distributed.default_threads(d):
        torch.set_num_threads(cfg.threads or distributed.default_threads(d))
    if not d.main:  # one voice: rank 0 logs, shows progress and writes
        log = _quiet
    elif d.on:
        log(f"distributed: {d.world} processes ({d.backend}), {torch.get_num_threads()} thread(s) each, global "
            f"batch {cfg.batch_size} ({cfg.batch_size // d.world} a process)")
    return Run(device, d, log)


@dataclass
class Data:
    """A run's examples and their tokens: training (less the slice), dev (the checks early stopping
    reads), the untouched slice, and the held half of dev (`mixing`: where the n-gram share and the
    temperature are chosen; empty when dev is not halved)."""
    train: list
    dev: list
    holdout: list
    train_tokens: list
    dev_tokens: list
    holdout_tokens: list
    bad: BadRows
    mixing: list = field(default_factory=list)
    mixing_tokens: list = field(default_factory=list)

    @property
    def choosing(self) -> tuple[list, list]:
        """(examples, tokens) where the end of a run chooses: the held half, or dev itself."""
        return (self.mixing, self.mixing_tokens) if self.mixing else (self.dev, self.dev_tokens)


def training_examples(cfg: TrainConfig, bad: BadRows) -> tuple[list, list]:
    """(the examples training learns from, the validation slice): the training file read as `cfg`
    says, cut at max_examples, the slice set aside (split_holdout). distill's teacher reads the same."""
    examples = read_rated(cfg.train, cfg, cfg.phrases, bad)
    if cfg.max_examples:
        examples = examples[:cfg.max_examples]
    kept, held = split_holdout(examples, cfg.holdout)
    if not kept:
        raise ValueError(f"{cfg.train}: no training examples" + (
            f" left after setting {len(held)} aside as the validation slice (holdout {cfg.holdout}): "
            "lower --holdout, or --holdout 0" if held else ""))
    return kept, held


def load_data(cfg: TrainConfig, log: Callable[[str], None]) -> Data:
    """Read the training and dev files and set the validation slice aside (split_holdout)."""
    bad = BadRows()
    train_ex, holdout_ex = training_examples(cfg, bad)
    dev_ex = read_rated(cfg.dev, cfg, False, bad) if cfg.dev else []
    if bad.count:
        log(bad.summary())
    mixing_ex: list = []
    if cfg.mixture_on == "held-half" and len(dev_ex) >= MIXING_HALF_MIN and (cfg.ngram_path == "auto" or cfg.calibrate):
        mixing_ex, dev_ex = split_holdout(dev_ex, 0.5)
    tokens = [[text_tokens(e.text, e.tokens, cfg.lowercase) for e in part]
              for part in (train_ex, dev_ex, holdout_ex, mixing_ex)]
    data = Data(train_ex, dev_ex, holdout_ex, *tokens[:3], bad, mixing_ex, tokens[3])
    log(f"train: {len(train_ex)} examples from {cfg.train}" + (f"; dev: {len(dev_ex)} from {cfg.dev}" if cfg.dev else "")
        + (f" (and {len(mixing_ex)} more held back from early stopping, where the n-gram share and the temperature "
           "are chosen)" if mixing_ex else "")
        + (f"; validation slice: {len(holdout_ex)} reviews set aside ({cfg.holdout:.0%}, untouched until the end)"
           if holdout_ex else ""))
    return data


# dev is halved (mixture_on "held-half", "cross-fit") only from this many reviews: below it each
# half is too small to choose a check, a share or a temperature on
MIXING_HALF_MIN = 200


@dataclass
class Recipe:
    """What training decided from the data, when the settings said "auto" (reading_rule)."""
    long_text: str
    pooling: str
    event_dropout: float | None
    why: str


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


def reading_ids(token_lists, vocab: Vocab, long_text: str, max_length: int) -> list:
    """Each text's pieces as ids, read exactly as predict and evaluate will read them."""
    return [[vocab.encode(p) for p in reading_pieces(t, long_text, LONG_THRESHOLD, max_length)[0]]
            for t in token_lists]


def train_step(net, optimizer, model, ids, lengths, y, teacher_logits, cfg: TrainConfig, weights, share: float):
    """One optimizer step on one batch; the batch's loss."""
    logits = net(ids, lengths)
    if teacher_logits is None:
        loss = F.cross_entropy(logits, y, weight=weights)
        if cfg.loss == "ordinal":
            loss = loss + ordinal_loss(logits, y)
    else:
        loss = transfer.loss(logits, y, teacher_logits, cfg.distill_alpha, cfg.distill_temperature,
                             cfg.loss == "ordinal", weights)
    if share != 1.0:
        loss = loss * share
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
    optimizer.step()
    return loss.item()


def eval_step(model: RatingModel, dev_ids, dev_ex, model_cfg: ModelConfig,
              d: distributed.Dist) -> tuple[dict | None, calibration.Reading | None]:
    """(every metric on dev, dev as the model read it) (None, None without a dev set), the model left
    in training mode."""
    if not dev_ex:
        return None, None
    reading = _read(model, dev_ids, d)
    probs = reading.distributions(model_cfg.temperature)
    model.train()
    return _metrics(probs, dev_ex, model_cfg), reading


@dataclass
class Fitted:
    history: list
    selection: loop.Selection
    stopped: bool
    seconds: float
    meta: dict  # what the kept model's metadata records about its data
    crossfit: loop.CrossFit | None = None  # dev read out of selection (mixture_on "cross-fit")


def fit(cfg: TrainConfig, run: Run, data: Data, targets: Targets, dev_ids, model: RatingModel, vocab: Vocab,
        model_cfg: ModelConfig, optimizer, coverage, recipe: Recipe, started: float,
        log: Callable[[str], None]) -> Fitted:
    """Train until dev stops improving (or the epoch limit), checking dev `evals_per_epoch` times an
    epoch and saving the best check as the model; a checkpoint after every epoch, for --resume."""
    d, device, out = run.d, run.device, Path(cfg.out)
    selection, start_epoch, history, earlier = loop.Selection(cfg.average_best), 1, [], 0.0
    crossfit = None
    if cfg.mixture_on == "cross-fit" and len(data.dev) >= MIXING_HALF_MIN and (cfg.ngram_path == "auto" or cfg.calibrate):
        crossfit = loop.CrossFit(dev_halves(data.dev), np.asarray([e.rating - model_cfg.scale_min for e in data.dev]),
                                 model_cfg.ratings)
    ckpt = out / "checkpoint"
    # what the checkpoint was trained on: resuming on other data would apply its weights to other word ids
    train_meta = artifact.file_record(cfg.train, len(data.train))  # hashed once: the checkpoint's key and the card's
    data_id = {"train_sha256": train_meta["sha256"], "examples": len(data.train), "vocab": len(vocab),
               "transfer_sha256": artifact.file_record(cfg.transfer, 0)["sha256"] if cfg.transfer else None}
    if cfg.resume and (ckpt / "state.json").exists():
        start_epoch, selection, history, earlier = _resume(ckpt, data_id, model, optimizer, cfg, log)
    elif cfg.resume:
        log(f"no checkpoint in {ckpt}: starting from scratch")
    meta = _data_record(cfg, data, targets, model_cfg, coverage, recipe, train_meta, log)

    net = model
    if d.on:
        from torch.nn.parallel import DistributedDataParallel
        net = DistributedDataParallel(model)  # rank 0's weights broadcast; gradients averaged each step
    batches_per_epoch = math.ceil(len(targets.ids) / cfg.batch_size)
    evals = cfg.evals_per_epoch if data.dev else 1  # without a dev set there is nothing to choose mid-epoch
    eval_at = {round(batches_per_epoch * k / evals) for k in range(1, evals + 1)}
    bar = _bar(batches_per_epoch * (cfg.epochs - start_epoch + 1), cfg.progress and d.main)
    stop = False
    if model_cfg.cell == "lstm" and device.type == "cpu":
        # the fast loop built (once per machine) before the clock of the first check starts
        kernel = fourgate.warm_up()
        if kernel.built_now and d.main:
            log(f"compiled the fast LSTM kernel in {kernel.seconds:.0f} s (once for this machine)")
    for epoch in range(start_epoch, cfg.epochs + 1):
        if d.on:  # dropout masks differ between processes (the weights and batch order agree), and
            # are seeded per epoch, so a resumed run draws what an uninterrupted one would
            torch.manual_seed(cfg.seed + 1000 * d.rank + epoch)
        model.train()
        t0, total, seen = time.perf_counter(), 0.0, 0  # t0: the last check's end (each check's time is its own)
        for step, batch in enumerate(batching.length_buckets(targets.ids, cfg.batch_size, cfg.seed + epoch), start=1):
            # this process's part of the global batch; its loss weighted by that part's share, so the
            # gradient DDP averages is the whole batch's mean (an empty part steps with weight 0)
            local = distributed.shard(batch, d) if d.on else batch
            share = len(local) * d.world / len(batch) if d.on else 1.0
            local = local or batch[:1]
            ids, lengths = pad_batch([targets.ids[i] for i in local])
            teacher = targets.teacher_logits[local].to(device) if targets.teacher_logits is not None else None
            loss = train_step(net, optimizer, model, ids.to(device), lengths.to(device), targets.y[local].to(device),
                              teacher, cfg, targets.weights, share)
            total += loss * len(batch)
            seen += len(batch)
            bar.update(1)
            best = selection.best
            bar.set_postfix_str(f"epoch {epoch} loss {total / seen:.3f}" + (f" best dev {best[0]:.1%}" if best[0] >= 0 else ""))
            if step not in eval_at:
                continue
            # -- evaluate, keep the best
            at = epoch - 1 + step / batches_per_epoch
            row = {"epoch": round(at, 3), "train_loss": total / max(seen, 1),
                   "seconds": round(time.perf_counter() - t0, 1)}  # training since the previous check
            dev_metrics, reading = eval_step(model, dev_ids, data.dev, model_cfg, d)
            if crossfit is not None:
                crossfit.offer(reading.distributions(model_cfg.temperature), reading, round(at, 3))
            if dev_metrics:
                row.update(dev_accuracy=dev_metrics["accuracy"], dev_mae=dev_metrics["mae"], dev_nll=dev_metrics["nll"])
            history.append(row)
            improved = selection.offer(
                loop.score(dev_metrics) if dev_metrics else (at, 0.0), row["epoch"],  # no dev set: the last is kept
                dev_metrics["nll"] if dev_metrics else None,
                (lambda: {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}) if dev_metrics else None)
            if improved and d.main:
                artifact.save(out, model, vocab, asdict(cfg),
                              {**meta, "dev_metrics": dev_metrics, "best_epoch": selection.best_epoch,
                               "history": history, "seconds_to_best": round(earlier + time.perf_counter() - started, 1)})
            if d.main:
                bar.write(f"epoch {row['epoch']:g}: loss {row['train_loss']:.4f}" +
                          (f", dev accuracy {dev_metrics['accuracy']:.1%}, MAE {dev_metrics['mae']:.3f}" if dev_metrics else "") +
                          (" (best, saved)" if improved else "") + f", {row['seconds']:.0f}s", file=sys.stderr)
            t0 = time.perf_counter()  # the next check's time starts here: the dev scoring is not training
            if data.dev and selection.stale >= cfg.patience * evals:
                if d.main:
                    bar.write(f"no better dev accuracy or NLL for {cfg.patience} epochs: stopping", file=sys.stderr)
                stop = True
                break
        if d.main:
            checkpoint.save(ckpt, model, optimizer, {"epoch": epoch, **selection.state(), "history": history,
                                                     "data": data_id, "seconds": earlier + time.perf_counter() - started})
        if stop:
            break
    bar.close()
    seconds = earlier + time.perf_counter() - started
    if d.main and not stop and data.dev and history and selection.best_epoch == history[-1]["epoch"]:
        # the epoch limit, not the data, ended the run: say so, and how to go on
        log(f"stopped at the epoch limit ({cfg.epochs}) with dev still improving (best at the last check): more epochs "
            f"may help: the same command with --resume --epochs {cfg.epochs * 2} goes on from here")
    return Fitted(history, selection, stop, seconds, meta, crossfit)


def _resume(ckpt: Path, data_id: dict, model, optimizer, cfg: TrainConfig, log):
    """(next epoch, selection, history, seconds trained before) from a run's checkpoint, refused when
    it was made from other data or is damaged (one line, never a traceback)."""
    try:
        saved = json.loads((ckpt / "state.json").read_text(encoding="utf-8"))
    except ValueError as e:
        raise ValueError(f"{ckpt / 'state.json'}: cannot resume from this checkpoint (not valid JSON: {e}): it is "
                         "damaged; remove it or train without --resume") from None
    if not isinstance(saved, dict) or saved.get("data") != data_id:
        raise ValueError(f"{ckpt}: this checkpoint was trained on other data (or another vocabulary) than "
                         f"{cfg.train}, or its record of them is missing: resume with the same training file, "
                         "or remove it or train without --resume")
    try:
        state = checkpoint.load(ckpt, model, optimizer)
        resumed = (int(state["epoch"]) + 1, loop.Selection.from_state(state, cfg.average_best),
                   list(state["history"]), float(state.get("seconds", 0.0)))
    except Exception as e:  # any damage: one line, never a traceback (the checkpoint is ours to judge)
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(f"{ckpt}: cannot resume from this checkpoint ({reason[:200]}): it is damaged; "
                         "remove it or train without --resume") from None
    log(f"resuming after epoch {state['epoch']} (best dev accuracy {resumed[1].best[0]:.1%} at epoch "
        f"{resumed[1].best_epoch})")
    return resumed


def _data_record(cfg: TrainConfig, data: Data, targets: Targets, model_cfg: ModelConfig, coverage, recipe: Recipe,
                 train_meta: dict, log) -> dict:
    """What the model's metadata says about its data (and the warnings a skewed file earns)."""
    majority = int(torch.bincount(targets.gold).argmax()) + cfg.scale_min  # the always-the-commonest baseline
    present = sorted({e.rating for e in data.train})
    if len(present) == 1:
        log(f"warning: every training review is rated {present[0]}: the model can only learn to predict {present[0]}")
    elif len(present) < len(model_cfg.ratings):
        log(f"warning: no training review is rated {', '.join(str(r) for r in model_cfg.ratings if r not in present)}: "
            "the model will rarely if ever predict that")
    return {"train_data": train_meta,
            "dev_data": artifact.file_record(cfg.dev, len(data.dev)) if cfg.dev else None,
            "holdout_data": {"examples": len(data.holdout), "fraction": cfg.holdout,
                             "rule": "sha256 of the review text below the fraction"} if data.holdout else None,
            "embedding_coverage": asdict(coverage) if coverage else None,
            "reading": recipe.why, "majority_rating": majority,
            "dev_majority_metrics": _majority(data.dev, majority, model_cfg) if data.dev else None}


def finish(cfg: TrainConfig, run: Run, data: Data, recipe: Recipe, model: RatingModel, vocab: Vocab,
           model_cfg: ModelConfig, dev_ids, fitted: Fitted, log) -> TrainResult:
    """The kept model made final: the K best checks averaged (average_best), its temperature fitted
    on dev, the untouched slice scored once (and the rating sets calibrated on it), the warnings, the
    curves and the card."""
    out, selection, history = Path(cfg.out), fitted.selection, fitted.history
    # the saved artifact is the best epoch's; record the whole history in it
    meta_path = out / "metadata.json"
    meta = json.loads(meta_path.read_text())
    meta["history"] = history
    meta["seconds"] = round(fitted.seconds, 3)  # the whole run; seconds_to_best: when the kept check was saved
    meta["threads"] = torch.get_num_threads()
    holdout_ids = reading_ids(data.holdout_tokens, vocab, recipe.long_text, cfg.max_length) if data.holdout else None
    if len(selection.top) > 1:
        # -- the average of the K best checks becomes the kept model; the single best is kept for comparison
        single = {"best_epoch": meta["best_epoch"], "dev_metrics": meta.get("dev_metrics")}
        if data.holdout:
            model.load_state_dict(selection.top[0][1])
            single["holdout_metrics"] = _score(model, holdout_ids, data.holdout, model_cfg)
        model.load_state_dict(average_weights([w for _, w in selection.top]))
        meta.update(dev_metrics=_score(model, dev_ids, data.dev, model_cfg), single_best=single,
                    best_epoch=f"average of the {len(selection.top)} best dev checks")
        artifact.save(out, model, vocab, asdict(cfg), meta)
        log(f"kept the average of the {len(selection.top)} best dev checks: dev accuracy "
            f"{meta['dev_metrics']['accuracy']:.1%}, MAE {meta['dev_metrics']['mae']:.3f} (the single best: "
            f"{single['dev_metrics']['accuracy']:.1%}, {single['dev_metrics']['mae']:.3f})")
    # -- after training, on the reviews `where` says (mixture_on): the temperature, then the n-gram share
    choosing_after = data.dev and (cfg.calibrate or cfg.ngram_path == "auto")
    kept = artifact.load(out) if choosing_after or data.holdout else None  # the model as saved
    if choosing_after:
        choosing, choosing_ids, reading, where, rule = _choosing(cfg, data, fitted, kept, dev_ids, vocab, recipe, meta, log)
    temperature = 1.0
    if data.dev and cfg.calibrate:  # one temperature, kept in the model (every reader applies it)
        truth = np.asarray([e.rating - model_cfg.scale_min for e in choosing])
        temperature, before, after, _ = calibration.fit_reading(reading, truth)
        kept.model.config.temperature = model_cfg.temperature = temperature
        meta["calibration"] = {"temperature": temperature, "fitted_on": where,
                               "dev_before": before, "dev_after": after}
        log(f"calibrated on {where}: temperature {temperature:.3f}; ECE {before['ece']:.1%} -> {after['ece']:.1%}, "
            f"NLL {before['nll']:.3f} -> {after['nll']:.3f} (no rating moves)")
    changed = bool(data.dev and cfg.calibrate)
    if data.dev and cfg.ngram_path == "auto":  # fitted on the training reviews, mixed in at the share chosen
        meta["ngram_path"], choosing_probs = ngram_step(choosing, kept, choosing_ids, reading.distributions(temperature),
                                                        data.train, reading_ids(data.train_tokens, vocab, recipe.long_text,
                                                                                cfg.max_length), cfg.seed, log,
                                                        rule=rule, where=where)
        if kept.model.ngrams is not None:
            model_cfg.ngram_share, model_cfg.ngram_features = kept.model.config.ngram_share, kept.model.config.ngram_features
            if rule == "checkpoint":
                meta["dev_metrics"] = _metrics(choosing_probs, data.dev, model_cfg)  # dev itself, as the kept model reads it
            changed = True
    if "cross_fit" in meta:  # the kept model (its temperature, its share) on dev as a user's evaluate reads it
        meta["dev_metrics"] = _metrics(read_distributions(kept.model, dev_ids), data.dev, model_cfg)
    if data.mixing:  # the final model on all of dev, both halves, as a user's evaluate would read it
        kept = kept or artifact.load(out)
        whole = data.dev + data.mixing
        meta["dev_metrics"] = _metrics(read_distributions(kept.model, dev_ids + choosing_ids), whole, model_cfg)
        changed = True
        log(f"dev ({len(whole)} reviews, both halves): accuracy {meta['dev_metrics']['accuracy']:.1%}, "
            f"MAE {meta['dev_metrics']['mae']:.3f}")
    if changed:
        artifact.save(out, kept.model, kept.vocab, asdict(cfg), meta)
    # -- the validation slice, scored once, on the kept model: nothing above ever read it
    holdout_metrics = None
    if data.holdout:
        probs = read_distributions(kept.model, holdout_ids)
        holdout_metrics = _metrics(probs, data.holdout, model_cfg)
        meta["holdout_metrics"] = holdout_metrics
        if kept.model.ngrams is not None:  # the recurrent path alone on the slice, beside the mixture
            meta["ngram_path"]["slice_recurrent"] = _metrics(
                read_distributions(kept.model, holdout_ids, recurrent_only=True), data.holdout, model_cfg)
        # rating sets: the slice's conformity scores, so a prediction can carry a run of ratings that
        # holds the truth at any coverage asked (conformal.py); the slice never chose anything above
        truth = np.asarray([e.rating - model_cfg.scale_min for e in data.holdout])
        meta["conformal"] = conformal.calibrate(probs, truth, f"the validation slice ({len(data.holdout)} reviews)")
        majority = fitted.meta["majority_rating"]
        meta["holdout_majority_metrics"] = _majority(data.holdout, majority, model_cfg)
        log(f"validation slice ({len(data.holdout)} reviews): accuracy {holdout_metrics['accuracy']:.1%}, "
            f"MAE {holdout_metrics['mae']:.3f}, macro-F1 {holdout_metrics['macro_f1']:.3f}, QWK {holdout_metrics['qwk']:.3f} "
            f"(always {_rating_words(model_cfg, majority)}: {meta['holdout_majority_metrics']['accuracy']:.1%}, "
            f"MAE {meta['holdout_majority_metrics']['mae']:.3f})")
    # -- warnings a user should not have to dig for, and the curves beside the model
    warning = _one_rating_warning(meta.get("dev_metrics") or holdout_metrics, "dev" if meta.get("dev_metrics") else "slice")
    if warning:
        log("warning: " + warning)
        meta["warnings"] = [warning]
    meta["curves"] = _write_curves(out, history, meta.get("best_epoch"), holdout_metrics)
    artifact.write_metadata(out, meta, artifact.model_card(model_cfg, asdict(cfg), meta))
    distributed.barrier(run.d)
    distributed.teardown(run.d)
    return TrainResult(out, selection.best_epoch, meta.get("dev_metrics"), history, fitted.seconds, data.bad,
                       holdout_metrics)


def _choosing(cfg: TrainConfig, data: Data, fitted: Fitted, kept: artifact.LoadedModel, dev_ids, vocab: Vocab,
              recipe: Recipe, meta: dict, log) -> tuple[list, list, calibration.Reading, str, str]:
    """Where the end of a run chooses the temperature and the n-gram share (mixture_on): (the
    reviews, their ids, their reading, where that is in words, the share's rule for
    loop.mixture_share). cross-fit: dev read out of selection (loop.CrossFit: each half of dev read
    by the check the other half chose); held-half: the half no check read; dev: dev read by the kept
    model, the share by the early-stopping rule."""
    crossfit = fitted.crossfit
    if crossfit is not None and crossfit.ready:
        first, second = crossfit.chosen
        piece_second = crossfit.second[first.owner]  # (P,) each piece's half: its text's
        reading = calibration.Reading(np.where(piece_second[:, None], first.logits, second.logits), first.owner,
                                      first.weights, first.n)
        truth = crossfit.truth
        crossed = loop.mixture_metrics(*[reading.distributions()] * 2, 1.0, truth, kept.config.ratings)
        as_kept = loop.mixture_metrics(*[calibration.read(kept.model, dev_ids).distributions()] * 2, 1.0, truth,
                                       kept.config.ratings)
        meta["cross_fit"] = {"halves": [int((~crossfit.second).sum()), int(crossfit.second.sum())],
                             "chosen_at": crossfit.epochs,
                             "dev_kept": {k: as_kept[k] for k in ("accuracy", "mae", "nll")},
                             "dev_out_of_selection": {k: crossed[k] for k in ("accuracy", "mae", "nll")}}
        log(f"dev read out of selection (each half by the check the other half chose, at epochs "
            f"{crossfit.epochs[0]:g} and {crossfit.epochs[1]:g}): accuracy {crossed['accuracy']:.1%}, MAE "
            f"{crossed['mae']:.3f}, where the kept check reads {as_kept['accuracy']:.1%}, {as_kept['mae']:.3f}")
        return (data.dev, dev_ids, reading, f"dev read out of selection ({len(data.dev)} reviews, cross-fitted)", "nll")
    if cfg.mixture_on == "cross-fit" and data.dev:
        log(f"dev not cross-fitted ({'no check ran since --resume' if crossfit is not None else f'under {MIXING_HALF_MIN} reviews'}):"
            " the temperature and the n-gram share are chosen on dev as the kept model reads it")
    if data.mixing:
        ids = reading_ids(data.mixing_tokens, vocab, recipe.long_text, cfg.max_length)
        return (data.mixing, ids, calibration.read(kept.model, ids),
                f"the held half of dev ({len(data.mixing)} reviews no dev check read)", "nll")
    return data.dev, dev_ids, calibration.read(kept.model, dev_ids), f"dev ({len(data.dev)} reviews)", "checkpoint"


def ngram_step(choosing: list, kept: artifact.LoadedModel, choosing_ids, recurrent: np.ndarray, train: list,
               train_ids, seed: int, log, rule: str = "checkpoint", where: str = "dev") -> tuple[dict, np.ndarray]:
    """Fit the n-gram path on the training reviews (their pieces' ids together, as predict reads
    them) and choose its share on the `choosing` reviews, given the recurrent path's distributions of
    them (loop.mixture_share, by `rule`: "nll" where no check chose, the checkpoint rule on dev as
    early stopping read it); a share below 1 puts the path into `kept.model`. Returns (what the
    metadata and the card record, the mixture's distributions of the choosing reviews)."""
    model, cfg = kept.model, kept.model.config
    targets = [e.rating - cfg.scale_min for e in train]
    if len(set(targets)) < 2:
        log("n-gram path: not fitted (the training reviews hold one rating)")
        return {"kept": False, "why": "the training reviews hold one rating"}, None
    started = time.perf_counter()
    path = NgramPath.fit([[i for p in pieces for i in p] for pieces in train_ids], targets, len(cfg.ratings),
                         cfg.vocab_size, seed=seed)
    truth = np.asarray([e.rating - cfg.scale_min for e in choosing])
    linear = path.probabilities([[i for p in pieces for i in p] for pieces in choosing_ids])
    share, mixed = loop.mixture_share(recurrent, linear, truth, cfg.ratings, rule=rule)
    other = loop.mixture_share(recurrent, linear, truth, cfg.ratings, rule="checkpoint" if rule == "nll" else "nll")[0]
    alone = loop.mixture_metrics(recurrent, linear, 1.0, truth, cfg.ratings)
    ngrams = loop.mixture_metrics(recurrent, linear, 0.0, truth, cfg.ratings)
    seconds = round(time.perf_counter() - started, 1)
    how = "the mixture's lowest NLL" if rule == "nll" else "the early-stopping rule (accuracy, ties by NLL)"
    out = {"kept": share < 1, "share": share, "features": int(path.keys.numel()), "seconds": seconds,
           "chosen_on": where, "rule": how, "share_by_the_other_rule": other,
           "dev_recurrent": {k: alone[k] for k in ("accuracy", "mae", "nll")},
           "dev_ngrams": {k: ngrams[k] for k in ("accuracy", "mae", "nll")},
           "dev_mixed": {k: mixed[k] for k in ("accuracy", "mae", "nll")}}
    if share < 1:
        model.ngrams = path.to(next(model.parameters()).device)
        cfg.ngram_share, cfg.ngram_features = share, out["features"]
        log(f"n-gram path: TF-IDF 1-2-grams + LR ({out['features']:,} n-grams, {seconds:g} s) mixed in at "
            f"{1 - share:g} (the recurrent path {share:g}), chosen on {where} by {how}: accuracy recurrent "
            f"{alone['accuracy']:.1%}, n-grams {ngrams['accuracy']:.1%}, mixture {mixed['accuracy']:.1%}; MAE "
            f"{alone['mae']:.3f} / {ngrams['mae']:.3f} / {mixed['mae']:.3f}")
    else:
        log(f"n-gram path: not kept ({where} is best with the recurrent path alone by {how}: {alone['accuracy']:.1%}, "
            f"MAE {alone['mae']:.3f}; n-grams alone {ngrams['accuracy']:.1%}; {seconds:g} s)")
    return out, mix(recurrent, linear, share)


def _rating_words(cfg: ModelConfig, rating: int) -> str:
    """A rating as the log says it: "4 stars", or its word for a model rated in words ("positive")."""
    names = cfg.label_names
    return repr(names[rating - cfg.scale_min]) if names else f"{rating} stars"


def _one_rating_warning(m: dict | None, where: str) -> str | None:
    """A kept model that gives nearly every review one rating, where the data does not: it learned
    little beyond the commonest rating (seen with a file sorted by rating, and with too little data)."""
    if not m or not m.get("confusion"):
        return None
    c = np.asarray(m["confusion"], dtype=np.float64)  # rows true, columns predicted
    if c.sum() < 20:
        return None
    predicted, true = c.sum(0) / c.sum(), c.sum(1) / c.sum()
    k = int(predicted.argmax())
    if predicted[k] < 0.9 or true[k] > 0.8:
        return None
    rating = m["ratings"][k]
    return (f"the kept model rates {predicted[k]:.0%} of the {where} reviews {rating} stars, which are {true[k]:.0%} of "
            f"them: it learned little beyond one rating (is the training file sorted by rating, or too small? "
            f"--class-weights weighs rare ratings up)")


def _write_curves(out: Path, history: list, kept, holdout: dict | None) -> dict:
    """curves.json (every check) and curves.png beside the model; returns where they are, for the card."""
    curves = {"history": history, "kept_epoch": kept,
              "holdout": {k: holdout.get(k) for k in ("accuracy", "mae", "macro_f1", "qwk", "n")} if holdout else None}
    (out / "curves.json").write_text(json.dumps(curves, indent=1))
    from reviewlstm.inference.metrics import plot_curves
    plot_curves(curves, out / "curves.png")
    return {"json": "curves.json", "png": "curves.png"}




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


def _majority(examples, rating: int, cfg: ModelConfig) -> dict:
    return metrics.score([e.rating for e in examples], [rating] * len(examples), [float(rating)] * len(examples),
                         cfg.ratings)


def read_rated(path, cfg: TrainConfig, phrases: bool, bad: BadRows) -> list:
    """The rated examples of a training or dev file, read as `cfg` says (format, columns, scale,
    rating words, the bad-row policy); SST trees give their phrases too when `phrases`."""
    from reviewlstm.nn.model import parse_labels
    return list(read_examples(path, fmt=cfg.format, columns=Columns(cfg.text_column, cfg.rating_column),
                              scale=(cfg.scale_min, cfg.scale_max), require_rating=True, phrases=phrases,
                              on_bad="skip" if cfg.skip_bad_rows else "raise", bad=bad,
                              labels=parse_labels(cfg.labels) if cfg.labels else None))


def _quiet(line: str) -> None:
    """The log of a process other than rank 0."""


def _read(model: RatingModel, piece_ids, d: distributed.Dist | None = None) -> calibration.Reading:
    """The model's reading of texts (calibration.Reading: its pieces' logits); under DDP each process
    reads its share of the texts and every process gets the whole."""
    if d is None or not d.on:
        return calibration.read(model, piece_ids)
    mine = distributed.shard(list(range(len(piece_ids))), d)  # a contiguous run of texts
    part = calibration.read(model, [piece_ids[i] for i in mine])
    flat = [p for pieces in piece_ids for p in pieces]
    owner = np.repeat(np.arange(len(piece_ids)), [len(pieces) for pieces in piece_ids])
    logits = np.zeros((len(flat), len(model.config.ratings)))
    starts = np.concatenate([[0], np.cumsum([len(pieces) for pieces in piece_ids])]).astype(int)
    for first, part_logits in distributed.gather((mine[0] if mine else 0, part.logits), d):
        logits[starts[first]:starts[first] + len(part_logits)] = part_logits
    return calibration.Reading(logits, owner, np.asarray([max(len(p), 1) for p in flat], dtype=np.float64),
                               len(piece_ids))


def _score(model: RatingModel, piece_ids, examples, cfg: ModelConfig, d: distributed.Dist | None = None) -> dict:
    return _metrics(_read(model, piece_ids, d).distributions(cfg.temperature), examples, cfg)


def _metrics(probs: np.ndarray, examples, cfg: ModelConfig) -> dict:
    """Every metric of (N, K) distributions against the examples' ratings."""
    truth = np.asarray([e.rating - cfg.scale_min for e in examples])
    pred, expected = (a.tolist() for a in rating_and_expected(probs, cfg.ratings))
    out = metrics.score([e.rating for e in examples], pred, expected, cfg.ratings)
    out.update(calibration.scores(probs, truth))  # ece, brier, nll
    return out


def _bar(total: int, enabled: bool):
    from tqdm import tqdm
    return tqdm(total=total, disable=None if enabled else True, unit="batch", file=sys.stderr, dynamic_ncols=True)
