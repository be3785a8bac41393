"""The kept model made final: the best checks averaged when asked; the temperature and the n-gram
share chosen where `mixture_on` says (dev, dev read out of selection, or its held half); the
untouched slice scored once and the rating sets calibrated on it; the warnings, the curves, the card."""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from reviewlstm.inference import artifact, calibration, conformal, metrics
from reviewlstm.training import distributed, loop
from reviewlstm.io.data import BadRows
from reviewlstm.nn.model import ModelConfig, RatingModel
from reviewlstm.nn.ngrams import NgramPath, mix
from reviewlstm.training.config import TrainConfig
from reviewlstm.inference.predict import rating_and_expected, read_distributions
from reviewlstm.io.text import Vocab
from reviewlstm.training.examples import MIXING_HALF_MIN, Data, reading_ids
from reviewlstm.training.recipe import Recipe
from reviewlstm.training.state import TrainState


@dataclass
class TrainResult:
    """What a run wrote and measured. Path-like: `predict(..., model=result)` reads the model it wrote."""
    out: Path
    best_epoch: float
    dev_metrics: dict | None
    history: list = field(default_factory=list)
    seconds: float = 0.0
    bad_rows: BadRows | None = None
    holdout_metrics: dict | None = None

    def __fspath__(self) -> str:
        return str(self.out)


@dataclass
class Fitted:
    history: list
    selection: loop.Selection
    stopped: bool
    seconds: float
    meta: dict  # what the kept model's metadata records about its data
    kept_check: dict | None  # the kept check: its weights, dev_metrics, best_epoch, seconds_to_best
    crossfit: loop.CrossFit | None = None  # dev read out of selection (mixture_on "cross-fit")


def finish(state: TrainState, fitted: Fitted) -> TrainResult:
    """The kept model made final in memory and saved once: the kept check's weights (or the K best
    checks averaged: average_best), its temperature and n-gram share, the untouched slice scored
    once (and the rating sets calibrated on it), the warnings, the curves and the card."""
    cfg, d, data, recipe, dev_ids, log = state.cfg, state.run.d, state.data, state.recipe, state.dev_ids, state.log
    model, vocab, model_cfg = state.model, state.vocab, state.model_cfg
    out, selection, history = Path(cfg.out), fitted.selection, fitted.history
    model.load_state_dict(fitted.kept_check["weights"])
    meta = {**fitted.meta, **{k: v for k, v in fitted.kept_check.items() if k != "weights"}, "history": history,
            "seconds": round(fitted.seconds, 3),  # the whole run; seconds_to_best: when the kept check was made
            "threads": torch.get_num_threads()}
    holdout_ids = reading_ids(data.holdout_tokens, vocab, recipe.long_text, cfg.max_length) if data.holdout else None
    if len(selection.top) > 1:
        # -- the average of the K best checks becomes the kept model; the single best is kept for comparison
        single = {"best_epoch": meta["best_epoch"], "dev_metrics": meta.get("dev_metrics")}
        if data.holdout:
            model.load_state_dict(selection.top[0][1])
            single["holdout_metrics"] = score_texts(model, holdout_ids, data.holdout, model_cfg)
        model.load_state_dict(average_weights([w for _, w in selection.top]))
        meta.update(dev_metrics=score_texts(model, dev_ids, data.dev, model_cfg), single_best=single,
                    best_epoch=f"average of the {len(selection.top)} best dev checks")
        log(f"kept the average of the {len(selection.top)} best dev checks: dev accuracy "
            f"{meta['dev_metrics']['accuracy']:.1%}, MAE {meta['dev_metrics']['mae']:.3f} (the single best: "
            f"{single['dev_metrics']['accuracy']:.1%}, {single['dev_metrics']['mae']:.3f})")
    # -- after training, on the reviews `where` says (mixture_on): the temperature, then the n-gram share
    choosing_after = data.dev and (cfg.calibrate or cfg.ngram_path == "auto")
    kept = artifact.LoadedModel(model, vocab, model.config, asdict(cfg), meta, out)
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
    if data.dev and cfg.ngram_path == "auto":  # fitted on the training reviews, mixed in at the share chosen
        meta["ngram_path"], choosing_probs = ngram_step(choosing, kept, choosing_ids, reading.distributions(temperature),
                                                        data.train, reading_ids(data.train_tokens, vocab, recipe.long_text,
                                                                                cfg.max_length), cfg.seed, log,
                                                        rule=rule, where=where)
        if kept.model.ngrams is not None:
            model_cfg.ngram_share, model_cfg.ngram_features = kept.model.config.ngram_share, kept.model.config.ngram_features
            if rule == "checkpoint":
                meta["dev_metrics"] = metrics_of(choosing_probs, data.dev, model_cfg)  # dev itself, as the kept model reads it
    if "cross_fit" in meta:  # the kept model (its temperature, its share) on dev as a user's evaluate reads it
        meta["dev_metrics"] = metrics_of(read_distributions(kept.model, dev_ids), data.dev, model_cfg)
    if data.mixing:  # the final model on all of dev, both halves, as a user's evaluate would read it
        whole = data.dev + data.mixing
        meta["dev_metrics"] = metrics_of(read_distributions(kept.model, dev_ids + choosing_ids), whole, model_cfg)
        log(f"dev ({len(whole)} reviews, both halves): accuracy {meta['dev_metrics']['accuracy']:.1%}, "
            f"MAE {meta['dev_metrics']['mae']:.3f}")
    # -- the validation slice, scored once, on the kept model: nothing above ever read it
    holdout_metrics = None
    if data.holdout:
        probs = read_distributions(kept.model, holdout_ids)
        holdout_metrics = metrics_of(probs, data.holdout, model_cfg)
        meta["holdout_metrics"] = holdout_metrics
        if kept.model.ngrams is not None:  # the recurrent path alone on the slice, beside the mixture
            meta["ngram_path"]["slice_recurrent"] = metrics_of(
                read_distributions(kept.model, holdout_ids, recurrent_only=True), data.holdout, model_cfg)
        # rating sets: the slice's conformity scores, so a prediction can carry a run of ratings that
        # holds the truth at any coverage asked (conformal.py); the slice never chose anything above
        truth = np.asarray([e.rating - model_cfg.scale_min for e in data.holdout])
        meta["conformal"] = conformal.calibrate(probs, truth, f"the validation slice ({len(data.holdout)} reviews)")
        majority = fitted.meta["majority_rating"]
        meta["holdout_majority_metrics"] = majority_metrics(data.holdout, majority, model_cfg)
        log(f"validation slice ({len(data.holdout)} reviews): accuracy {holdout_metrics['accuracy']:.1%}, "
            f"MAE {holdout_metrics['mae']:.3f}, macro-F1 {holdout_metrics['macro_f1']:.3f}, QWK {holdout_metrics['qwk']:.3f} "
            f"(always {_rating_words(model_cfg, majority)}: {meta['holdout_majority_metrics']['accuracy']:.1%}, "
            f"MAE {meta['holdout_majority_metrics']['mae']:.3f})")
    # -- warnings a user should not have to dig for, and the curves beside the model
    warnings = [w for w in (_no_better_than_majority(holdout_metrics, meta.get("holdout_majority_metrics"),
                                                     _rating_words(model_cfg, fitted.meta["majority_rating"])),
                            _one_rating_warning(meta.get("dev_metrics") or holdout_metrics,
                                                "dev" if meta.get("dev_metrics") else "slice")) if w]
    for warning in warnings:
        log("warning: " + warning)
    if warnings:
        meta["warnings"] = warnings
    meta["curves"] = _write_curves(out, history, meta.get("best_epoch"), holdout_metrics,
                                   meta.get("dev_majority_metrics"), meta.get("holdout_majority_metrics"))
    artifact.save(out, model, vocab, asdict(cfg), meta)  # once, whole: metadata, card and weights together
    distributed.barrier(d)
    distributed.teardown(d)
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


def average_weights(states: list[dict]) -> dict:
    """The element-wise mean of several state dicts of one model (in float64, then back to each
    tensor's own dtype)."""
    return {k: torch.stack([s[k].double() for s in states]).mean(0).to(states[0][k].dtype) for k in states[0]}


def majority_metrics(examples, rating: int, cfg: ModelConfig) -> dict:
    return metrics.score([e.rating for e in examples], [rating] * len(examples), [float(rating)] * len(examples),
                         cfg.ratings)


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


def _no_better_than_majority(m: dict | None, majority: dict | None, rating: str) -> str | None:
    """A kept model no more accurate on the untouched slice than always giving the commonest rating:
    what it learned does not show on reviews it has not seen."""
    if not m or not majority or m["accuracy"] > majority["accuracy"]:
        return None
    return (f"the kept model is no more accurate than always {rating} on the validation slice ({m['accuracy']:.1%} "
            f"against {majority['accuracy']:.1%}; MAE {m['mae']:.3f} against {majority['mae']:.3f}): too few reviews "
            f"or epochs, or a skewed file? try more --epochs, --class-weights, or reviewlstm distill")


def _write_curves(out: Path, history: list, kept, holdout: dict | None, dev_majority: dict | None = None,
                  holdout_majority: dict | None = None) -> dict:
    """curves.json (every check) and curves.png beside the model; returns where they are, for the card."""
    pick = ("accuracy", "mae", "macro_f1", "qwk", "n")
    curves = {"history": history, "kept_epoch": kept,
              "holdout": {k: holdout.get(k) for k in pick} if holdout else None,
              "majority": {part: {k: m[k] for k in ("accuracy", "mae")}
                           for part, m in (("dev", dev_majority), ("slice", holdout_majority)) if m}}
    out.mkdir(parents=True, exist_ok=True)  # the first write into a new model directory: the save swaps it in whole
    (out / "curves.json").write_text(json.dumps(curves, indent=1))
    from reviewlstm.inference.metrics import plot_curves
    plot_curves(curves, out / "curves.png")
    return {"json": "curves.json", "png": "curves.png"}


def read_texts(model: RatingModel, piece_ids, d: distributed.Dist | None = None) -> calibration.Reading:
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


def score_texts(model: RatingModel, piece_ids, examples, cfg: ModelConfig, d: distributed.Dist | None = None) -> dict:
    return metrics_of(read_texts(model, piece_ids, d).distributions(cfg.temperature), examples, cfg)


def metrics_of(probs: np.ndarray, examples, cfg: ModelConfig) -> dict:
    """Every metric of (N, K) distributions against the examples' ratings."""
    truth = np.asarray([e.rating - cfg.scale_min for e in examples])
    pred, expected = (a.tolist() for a in rating_and_expected(probs, cfg.ratings))
    out = metrics.score([e.rating for e in examples], pred, expected, cfg.ratings)
    out.update(calibration.scores(probs, truth))  # ece, brier, nll
    return out
