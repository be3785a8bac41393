"""Training, as one story: config, seed, data (a validation slice set aside), vocabulary,
embeddings, model, optimizer, then the loop that evaluates on dev during every epoch and keeps the
best checkpoint, and last the slice, scored once on the kept model.

The slice (`holdout`, a tenth of the training reviews by default) is chosen by a hash of each
review's text, so no seed or setting moves it, and it is scored only after training: no choice
(checkpoint, early stop) ever sees it. Dev picks the checkpoint, so dev's figure is optimistic by
the picking; the slice's is not.
"""
from __future__ import annotations

import json
import math
import os
import random
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from reviewlstm.inference import artifact, calibration
from reviewlstm.training import batching, checkpoint, distributed, loop, transfer
from reviewlstm.nn import fourgate
from reviewlstm.nn.model import ModelConfig, RatingModel, ordinal_loss
from reviewlstm.training.config import TrainConfig
from reviewlstm.inference.predict import pad_batch
from reviewlstm.training.examples import MIXING_HALF_MIN, Data, dev_halves, load_data, reading_ids
from reviewlstm.training.finish import Fitted, TrainResult, finish, majority_metrics, metrics_of, read_texts
from reviewlstm.training.recipe import Recipe, Targets, build_model, decide_recipe, training_targets
from reviewlstm.training.state import Run, TrainState


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
    state = TrainState(cfg, run, data, recipe, targets, dev_ids, model, vocab, model_cfg, optimizer, coverage, started,
                       log)
    fitted = fit(state)
    if not run.d.main:  # rank 0 writes the kept model and scores the slice; the others are done
        distributed.barrier(run.d)
        distributed.teardown(run.d)
        return TrainResult(Path(cfg.out), fitted.selection.best_epoch, None, fitted.history, fitted.seconds, data.bad,
                           None)
    return finish(state, fitted)


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
              d: distributed.Dist) -> tuple[dict | None, calibration.Reading | None, np.ndarray | None]:
    """(every metric on dev, dev as the model read it, its distributions) (Nones without a dev set),
    the model left in training mode."""
    if not dev_ex:
        return None, None, None
    reading = read_texts(model, dev_ids, d)
    probs = reading.distributions(model_cfg.temperature)
    model.train()
    return metrics_of(probs, dev_ex, model_cfg), reading, probs


def fit(state: TrainState) -> Fitted:
    """Train until dev stops improving (or the epoch limit), checking dev `evals_per_epoch` times an
    epoch and keeping the best check; a checkpoint after every epoch, for --resume."""
    cfg, run, data, targets, dev_ids, log = state.cfg, state.run, state.data, state.targets, state.dev_ids, state.log
    model, vocab, model_cfg, optimizer = state.model, state.vocab, state.model_cfg, state.optimizer
    coverage, recipe, started = state.coverage, state.recipe, state.started
    d, device, out = run.d, run.device, Path(cfg.out)
    selection, start_epoch, history, earlier = loop.Selection(cfg.average_best), 1, [], 0.0
    crossfit = None
    if cfg.mixture_on == "cross-fit" and len(data.dev) >= MIXING_HALF_MIN and (cfg.ngram_path == "auto" or cfg.calibrate):
        crossfit = loop.CrossFit(dev_halves(data.dev), np.asarray([e.rating - model_cfg.scale_min for e in data.dev]),
                                 model_cfg.ratings)
    ckpt = checkpoint.location(out)
    # what the checkpoint was trained on: resuming on other data would apply its weights to other word ids
    train_meta = artifact.file_record(cfg.train, len(data.train))  # hashed once: the checkpoint's key and the card's
    data_id = {"train_sha256": train_meta["sha256"], "examples": len(data.train), "vocab": len(vocab),
               "transfer_sha256": artifact.file_record(cfg.transfer, 0)["sha256"] if cfg.transfer else None}
    kept_check = None  # the kept check so far: its weights and what the metadata says of it, kept in memory
    if cfg.resume and (ckpt / "state.json").exists():
        start_epoch, selection, history, earlier, kept_check = _resume(ckpt, out, data_id, model, optimizer, cfg, log)
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
            dev_metrics, reading, dev_probs = eval_step(model, dev_ids, data.dev, model_cfg, d)
            if crossfit is not None:
                crossfit.offer(dev_probs, reading, round(at, 3))
            if dev_metrics:
                row.update(dev_accuracy=dev_metrics["accuracy"], dev_mae=dev_metrics["mae"], dev_nll=dev_metrics["nll"])
            history.append(row)
            improved = selection.offer(
                loop.score(dev_metrics) if dev_metrics else (at, 0.0), row["epoch"],  # no dev set: the last is kept
                dev_metrics["nll"] if dev_metrics else None,
                (lambda: {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}) if dev_metrics else None)
            if improved and d.main:
                kept_check = {"weights": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
                        "dev_metrics": dev_metrics, "best_epoch": selection.best_epoch,
                        "seconds_to_best": round(earlier + time.perf_counter() - started, 1)}
            if d.main:
                bar.write(f"epoch {row['epoch']:g}: loss {row['train_loss']:.4f}" +
                          (f", dev accuracy {dev_metrics['accuracy']:.1%}, MAE {dev_metrics['mae']:.3f}" if dev_metrics else "") +
                          (" (best, kept)" if improved else "") + f", {row['seconds']:.0f}s", file=sys.stderr)
            t0 = time.perf_counter()  # the next check's time starts here: the dev scoring is not training
            if data.dev and selection.stale >= cfg.patience * evals:
                if d.main:
                    bar.write(f"no better dev accuracy or NLL for {cfg.patience} epochs: stopping", file=sys.stderr)
                stop = True
                break
        if d.main:
            checkpoint.save(ckpt, model, optimizer, {"epoch": epoch, **selection.state(), "history": history,
                                                     "data": data_id, "seconds": earlier + time.perf_counter() - started,
                                                     "kept_check": {k: v for k, v in (kept_check or {}).items()
                                                                    if k != "weights"}},
                            best=kept_check["weights"] if kept_check else None)
        if stop:
            break
    bar.close()
    seconds = earlier + time.perf_counter() - started
    if d.main and not stop and data.dev and history and selection.best_epoch == history[-1]["epoch"]:
        # the epoch limit, not the data, ended the run: say so, and how to go on
        log(f"stopped at the epoch limit ({cfg.epochs}) with dev still improving (best at the last check): more epochs "
            f"may help: the same command with --resume --epochs {cfg.epochs * 2} goes on from here")
    return Fitted(history, selection, stop, seconds, meta, kept_check, crossfit)


def _resume(ckpt: Path, out: Path, data_id: dict, model, optimizer, cfg: TrainConfig, log):
    """(next epoch, selection, history, seconds trained before, the kept check) from a run's checkpoint, refused when
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
        weights = checkpoint.load_best(ckpt)
        best = {**state["kept_check"], "weights": weights} if weights is not None and state.get("kept_check") else None
        if best is None and (out / "config.json").exists():  # a checkpoint without the kept check: OUT's model is it
            kept = artifact.load(out)
            best = {"weights": kept.model.state_dict(), "dev_metrics": kept.metadata.get("dev_metrics"),
                    "best_epoch": kept.metadata.get("best_epoch"), "seconds_to_best": kept.metadata.get("seconds_to_best")}
        resumed = (int(state["epoch"]) + 1, loop.Selection.from_state(state, cfg.average_best),
                   list(state["history"]), float(state.get("seconds", 0.0)), best)
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
            "dev_majority_metrics": majority_metrics(data.dev, majority, model_cfg) if data.dev else None}


def _quiet(line: str) -> None:
    """The log of a process other than rank 0."""


def _bar(total: int, enabled: bool):
    from tqdm import tqdm
    return tqdm(total=total, disable=None if enabled else True, unit="batch", file=sys.stderr, dynamic_ncols=True)
