"""Reading a model against rated reviews: `evaluate` (every metric, the calibration scores, the rating
sets' coverage, the pictures) and `calibrate` (a temperature and rating sets refitted on reviews the
model did not train on, written as a model). The facade (reviewlstm.api) re-exports both."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from reviewlstm.inference import artifact, calibration, metrics
from reviewlstm.inference.artifact import LoadedModel, load_model
from reviewlstm.inference.predict import Predictor
from reviewlstm.io.data import BadRows, Columns, read_examples


def evaluate(path: str | Path, model: str | Path | LoadedModel | None = None, fmt: str | None = None,
             columns: Columns | None = None, skip_bad_rows: bool = False, confusion_png: str | Path | None = None,
             long_text: str | None = None, reliability_png: str | Path | None = None,
             coverage: float | None = None) -> dict:
    """Every metric of the model on a labelled file (SST trees: sentences): accuracy, macro-F1, MAE,
    within one star, QWK, the confusion matrix, and how well its probabilities are calibrated (ece,
    brier, nll; `reliability` per confidence bin, drawn by reliability_png); with `coverage`, the rating
    sets' coverage reached on this file and their mean size (`rating_sets`)."""
    for name, png in (("confusion_png", confusion_png), ("reliability_png", reliability_png)):
        _check_png(name, png)
    loaded = model if isinstance(model, LoadedModel) else load_model(model)
    cfg = loaded.config
    bad = BadRows()
    examples = list(read_examples(path, fmt=fmt, columns=columns, scale=(cfg.scale_min, cfg.scale_max),
                                  require_rating=True, on_bad="skip" if skip_bad_rows else "raise", bad=bad, scale_hint=False,
                                  labels=cfg.label_names))
    preds = Predictor(loaded, long_text=long_text).predict([e.text for e in examples], [e.tokens for e in examples])
    truth_ratings = [e.rating for e in examples]
    result = metrics.score(truth_ratings, [p.rating for p in preds], [p.expected_rating for p in preds], cfg.ratings)
    if examples:  # the floor beside it: always the file's commonest rating
        common = max(cfg.ratings, key=truth_ratings.count)
        floor = metrics.score(truth_ratings, [common] * len(examples), [float(common)] * len(examples), cfg.ratings)
        result["majority"] = {"rating": cfg.label_of(common) or common, "accuracy": floor["accuracy"], "mae": floor["mae"]}
    probs = np.asarray([p.probabilities for p in preds], dtype=np.float64).reshape(len(preds), len(cfg.ratings))
    truth = np.asarray([e.rating - cfg.scale_min for e in examples])
    result.update(calibration.scores(probs, truth), reliability=calibration.reliability(probs, truth),
                  temperature=cfg.temperature)
    if coverage is not None:
        from reviewlstm.inference import conformal
        result["rating_sets"] = conformal.evaluate(probs, truth, conformal.kept(loaded), coverage)
    result["file"] = str(path)
    result["model"] = str(loaded.path)
    result["skipped_bad_rows"] = bad.count
    if bad.count:
        result["bad_rows"] = bad.summary()
    if confusion_png:
        metrics.plot_confusion(result, confusion_png, title=f"{Path(path).name}: accuracy {result['accuracy']:.1%}, "
                                                            f"MAE {result['mae']:.2f}")
    if reliability_png:
        calibration.plot_reliability(result["reliability"], reliability_png,
                                     title=f"{Path(path).name}: ECE {result['ece']:.1%} (temperature {cfg.temperature:g})")
    return result


def _check_png(name: str, path) -> None:
    """A picture's path, checked before any work: a file ending in .png, not a directory (the
    plotting library would write DIR.png and be reported as DIR)."""
    if path is None:
        return
    p = Path(path)
    if p.is_dir():
        raise ValueError(f"{name} {path}: is a directory: give a file name ending in .png")
    if p.suffix.lower() != ".png":
        raise ValueError(f"{name} {path}: the picture is a PNG: give a file name ending in .png")


def calibrate(dev: str | Path, out: str | Path, model: str | Path | LoadedModel | None = None, fmt: str | None = None,
              columns: Columns | None = None, skip_bad_rows: bool = False, on_warning=None) -> dict:
    """Fit the model's softmax temperature on a labelled file (reviews the model did not train on) and
    write the calibrated model to `out` (the same directory as the model's updates it in place).
    `train` does this on its dev set by itself; this is for a model trained without, or for another
    domain's reviews. No rating moves. Returns the temperature and the file's ECE, Brier and NLL
    before and after. Also refits the rating sets (coverage) on the same reviews. on_warning(line):
    told when the fit says little (the temperature at its search bound); default: standard error."""
    on_warning = on_warning or (lambda line: print(f"reviewlstm: warning: {line}", file=sys.stderr))
    loaded = model if isinstance(model, LoadedModel) else load_model(model)
    cfg = loaded.config
    examples = list(read_examples(dev, fmt=fmt, columns=columns, scale=(cfg.scale_min, cfg.scale_max),
                                  require_rating=True, on_bad="skip" if skip_bad_rows else "raise", scale_hint=False,
                                  labels=cfg.label_names))
    if len(examples) < CALIBRATE_MIN:
        raise ValueError(f"{dev}: {len(examples)} rated review(s); calibration needs at least {CALIBRATE_MIN} the "
                         "model did not train on (rating sets with coverage C need at least C / (1 - C): 9 for 90%, "
                         "19 for 95%, and far more for a temperature worth keeping)")
    artifact.check_output(out)
    with artifact.OutputLock(out):  # one writer: a train or another calibrate into `out` fails at once
        return _calibrate(dev, out, loaded, examples, on_warning)


# the fewest rated reviews `calibrate` fits a temperature and rating sets on
CALIBRATE_MIN = 30


def _calibrate(dev, out, loaded: LoadedModel, examples: list, on_warning) -> dict:
    import copy
    import shutil
    cfg = loaded.config
    reader = Predictor(loaded)
    piece_ids = [reader.piece_ids(e.text, e.tokens) for e in examples]
    truth = np.asarray([e.rating - cfg.scale_min for e in examples])
    temperature, before, after, probs = calibration.fit(loaded.model, piece_ids, truth)
    if calibration.at_bound(temperature):
        on_warning(f"the temperature {temperature:g} is at the edge of the range searched "
                   f"({calibration.T_RANGE[0]:g}-{calibration.T_RANGE[1]:g}): these reviews say little about the "
                   "model's confidence (too few, or one rating alone?)")
    calibrated = copy.deepcopy(loaded.model)  # the loaded (cached) model stays as it was
    calibrated.config.temperature = temperature
    record = {"temperature": temperature, "fitted_on": f"{dev} ({len(examples)} reviews)",
              "dev_before": before, "dev_after": after}
    # rating sets from the same reviews, at the new temperature (conformal.py)
    from reviewlstm.inference import conformal
    sets = conformal.calibrate(probs, truth, record["fitted_on"])
    out = Path(out)
    source = Path(loaded.path)
    artifact.save(out, calibrated, loaded.vocab, loaded.train_config,
                  {**loaded.metadata, "calibration": record, "conformal": sets})
    if out.resolve() != source.resolve():
        for name in ("curves.json", "curves.png"):  # the training story travels with the model
            if (source / name).is_file() and not (out / name).exists():
                shutil.copy2(source / name, out / name)
    artifact.forget(out)  # a model rewritten in place is read afresh
    return {**record, "out": str(out), "model": str(source)}
