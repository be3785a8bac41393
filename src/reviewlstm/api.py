"""The library's front door: train, evaluate, predict, explain, score a file. The CLI and the web service
only parse, validate and call these."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable

from reviewlstm.inference.artifact import ArtifactError, LoadedModel, default_model_path, load_model, start_model_path
from reviewlstm.io.data import BadRows, Columns, read_examples, text_problem
from reviewlstm.inference.explain import EXPLAIN_MAX_CHARS, Explanation
from reviewlstm.nn.fourgate import Kernel, warm_up
from reviewlstm.inference.explain import explain as _explain
from reviewlstm.inference.predict import Prediction, Predictor
from reviewlstm.inference.evaluate import CALIBRATE_MIN, calibrate, evaluate
from reviewlstm.inference.scoring import ScoreSummary, prediction_columns, rate_rows, score_file
from reviewlstm.training.config import PretrainConfig
from reviewlstm.training.pretrain import PretrainResult
from reviewlstm.training.pretrain import pretrain as _pretrain
from reviewlstm.training.config import TrainConfig
from reviewlstm.training.finish import TrainResult
from reviewlstm.training.train import train as _train

__all__ = ["load_model", "default_model_path", "start_model_path", "train", "predict", "explain", "evaluate",
           "score_file", "calibrate", "export", "warm_up", "ScoreSummary", "Prediction", "Kernel", "text_problem",
           "ArtifactError", "pretrain", "PretrainConfig", "Predictor", "PretrainResult", "TrainConfig", "TrainResult",
           "LoadedModel", "Explanation", "EXPLAIN_MAX_CHARS", "CALIBRATE_MIN", "BadRows", "Columns", "read_examples",
           "prediction_columns", "rate_rows"]


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
            try:
                import pandas  # noqa: F401  (a table comes back as a pandas DataFrame)
            except ImportError:
                raise ImportError("a pyarrow Table is rated into a pandas DataFrame, and pandas is not installed: "
                                  'pip install -e ".[pandas]" (or pass a pyarrow Array of the texts)') from None
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


def export(out: str | Path, model: str | Path | LoadedModel | None = None, format: str = "onnx") -> Path:
    """Write the model for another runtime: `format` "onnx" (out/model.onnx with its vocab.json and
    config.json: onnx_export.py). Returns the model file's path."""
    if format != "onnx":
        raise ValueError(f"format must be onnx, got {format!r}")
    from reviewlstm.inference import onnx_export
    loaded = model if isinstance(model, LoadedModel) else load_model(model)
    return onnx_export.export(loaded, out)
