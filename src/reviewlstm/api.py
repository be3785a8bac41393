"""The library's front door: train, evaluate, predict, explain, score a file. The CLI and the web service
only parse, validate and call these."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from reviewlstm.inference import artifact, calibration, metrics
from reviewlstm.inference.artifact import ArtifactError, LoadedModel, default_model_path, load_model, start_model_path
from reviewlstm.io.data import BadRows, Columns, read_examples, text_problem
from reviewlstm.inference.explain import EXPLAIN_MAX_CHARS, Explanation
from reviewlstm.nn.fourgate import Kernel, warm_up
from reviewlstm.inference.explain import explain as _explain
from reviewlstm.inference.predict import Prediction, Predictor
from reviewlstm.inference.scoring import ScoreSummary, prediction_columns, rate_rows, score_file
from reviewlstm.training.config import PretrainConfig
from reviewlstm.training.pretrain import PretrainResult
from reviewlstm.training.pretrain import pretrain as _pretrain
from reviewlstm.training.config import TrainConfig
from reviewlstm.training.finish import TrainResult
from reviewlstm.training.train import train as _train

__all__ = ["load_model", "default_model_path", "start_model_path", "train", "predict", "explain", "evaluate",
           "score_file", "calibrate", "export", "warm_up", "ScoreSummary", "Prediction", "Kernel", "text_problem",
           "ArtifactError", "pretrain", "PretrainConfig", "Predictor"]


def pretrain(config: PretrainConfig | None = None, log: Callable[[str], None] = print, **settings) -> PretrainResult:
    """Teach the recurrent layer to read reviews before it learns ratings: a language model over
    review texts (rated or not), written as a model directory for ``train(init_from=...)`` (see
    reviewlstm.training.pretrain). ``pretrain(texts=["unrated.csv"], out="lm")``."""
    return _pretrain(config or PretrainConfig(**settings), log)


def train(config: TrainConfig | None = None, log: Callable[[str], None] = print, **settings) -> TrainResult:
    """Train a model: ``train(train="reviews.csv", dev="dev.csv", out="model")`` or with a TrainConfig."""
    cfg = config or TrainConfig(**settings)
    return _train(cfg, log=log)


def predict(texts, model: str | Path | LoadedModel | None = None, long_text: str | None = None,
            text_column: str | None = None, coverage: float | None = None):
    """The rating of one text (a Prediction), of each of several (a list), or of every row of a table.

    texts: a string; a list (or any iterable) of strings; a pandas Series or pyarrow Array of
    strings (returns a pandas DataFrame of the prediction columns, on the Series' index); or a pandas
    DataFrame with `text_column` (default: the first of text, review, content, ... it has), returned
    with the prediction columns added. The rule for a text that cannot be rated is the CLI's and the
    service's: a string or list with an empty (or non-string) text is refused with a ValueError naming
    it; a table keeps every row, and the rows that could not be rated get an `error`, as
    `reviewlstm predict --input` does. coverage (e.g. 0.9): each Prediction also carries `rating_set`,
    the run of neighbouring ratings holding the true one with that probability (conformal.py).
    """
    loaded = model if isinstance(model, LoadedModel) else load_model(model)
    predictor = Predictor(loaded, long_text=long_text, coverage=coverage)
    table = _as_table(texts, text_column)
    if table is not None:
        return _predict_table(predictor, *table)
    if text_column is not None:
        raise TypeError("text_column goes with a pandas DataFrame")
    single = isinstance(texts, str)
    if not single and (isinstance(texts, (bytes, dict)) or not isinstance(texts, Iterable)):
        raise TypeError(f"predict takes a string, a list of strings, or a pandas DataFrame / Series; "
                        f"got {type(texts).__name__}")
    batch = [texts] if single else list(texts)
    for i, t in enumerate(batch):
        problem = text_problem(t)
        if problem:
            raise ValueError(f"text {i + 1} {problem}" if not single else f"the text {problem}")
    out = predictor.predict(batch)
    return out[0] if single else out


def _as_table(texts, text_column: str | None):
    """(frame or None, texts, index) for pandas / pyarrow inputs, else None."""
    kind = type(texts).__module__.split(".")[0]
    if kind == "pyarrow":
        import pyarrow as pa
        if isinstance(texts, (pa.Array, pa.ChunkedArray)):
            return None, texts.to_pylist(), None
        if isinstance(texts, pa.Table):
            texts = texts.to_pandas()
            kind = "pandas"
    if kind != "pandas":
        return None
    import pandas as pd
    if isinstance(texts, pd.Series):
        return None, texts.tolist(), texts.index
    if isinstance(texts, pd.DataFrame):
        from reviewlstm.io.data import TEXT_COLUMNS
        column = text_column
        if column is None:
            lower = {str(c).lower(): c for c in texts.columns}
            column = next((lower[c] for c in TEXT_COLUMNS if c in lower), None)
            if column is None:
                raise ValueError(f"no text column: expected one of {', '.join(TEXT_COLUMNS)} (or name it with "
                                 f"text_column=); the columns are {', '.join(map(str, texts.columns))}")
        elif column not in texts.columns:
            raise ValueError(f"no text column {column!r}; the columns are {', '.join(map(str, texts.columns))}")
        return texts, texts[column].tolist(), texts.index
    raise TypeError(f"predict takes a pandas DataFrame or Series, got {type(texts).__name__}")


def _predict_table(predictor: Predictor, frame, texts: list, index):
    import pandas as pd
    errors = [None if (p := text_problem(t)) is None else f"text {p}" for t in texts]
    columns = list(prediction_columns(None, predictor.config.ratings, None, predictor.coverage is not None,
                                      predictor.config.label_names))  # an empty table keeps them too
    out = pd.DataFrame(rate_rows(predictor, texts, errors), index=index, columns=columns)
    out["predicted_rating"] = out["predicted_rating"].astype("Int64")  # missing where the row has an error
    if frame is None:
        return out
    taken = [c for c in out.columns if c in frame.columns]
    if taken:
        raise ValueError(f"the DataFrame already has column(s) {', '.join(taken)}: rename them first")
    return pd.concat([frame, out], axis=1)


def explain(text: str, model: str | Path | LoadedModel | None = None, method: str = "integrated_gradients",
            max_chars: int | None = EXPLAIN_MAX_CHARS, long_text: str | None = None, on_piece=None) -> Explanation:
    """Why the model rates `text` as it does: each word's contribution, the gates word by word, the
    prediction after each word (see reviewlstm.inference.explain). At most `max_chars` characters are explained
    (None: all; cost grows with length): `explained_chars` says how many were."""
    problem = text_problem(text)
    if problem:
        raise ValueError(f"the text {problem}")
    if max_chars is not None and max_chars < 1:
        raise ValueError(f"max_chars must be >= 1 (or None for no limit), got {max_chars}")
    loaded = model if isinstance(model, LoadedModel) else load_model(model)
    return _explain(loaded, text, method=method, max_chars=max_chars, long_text=long_text, on_piece=on_piece)


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
    result = metrics.score([e.rating for e in examples], [p.rating for p in preds],
                           [p.expected_rating for p in preds], cfg.ratings)
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


def export(out: str | Path, model: str | Path | LoadedModel | None = None, format: str = "onnx") -> Path:
    """Write the model for another runtime: `format` "onnx" (out/model.onnx with its vocab.json and
    config.json: onnx_export.py). Returns the model file's path."""
    if format != "onnx":
        raise ValueError(f"format must be onnx, got {format!r}")
    from reviewlstm.inference import onnx_export
    loaded = model if isinstance(model, LoadedModel) else load_model(model)
    return onnx_export.export(loaded, out)
