"""Scoring past one machine with Ray Data (optional install: pip install -e ".[ray]").

    import ray, reviewlstm.apps.ray_scoring as rs
    scored = rs.score_dataset(ray.data.read_parquet("s3://bucket/reviews/"), model="my-model")
    scored = rs.score_files(["a.csv", "folder/"], model="my-model")      # read by reviewlstm's own readers
    reviewlstm predict --input FOLDER --output OUT_FOLDER --engine ray [--address ray://head:10001]

Ray only distributes; the scoring is `predict --input`'s own: the same readers (so a malformed row
is an `error`, never a drop), the same `Predictor`, the same output columns (`scoring.prediction_columns`).
The model is loaded once per actor (`_Scorer`, a callable class for `map_batches`), never pickled
per batch: actors receive the model's path, which every node must be able to read.

CPUs: each actor takes `actor_cpus` (default 1) and one torch thread per CPU. By default the actors
leave one logical CPU of the cluster free: actors holding every CPU starve the tasks that read the
input, and the run hangs (on a 2-core machine, for good). A local Ray started here (`ensure_ray`)
declares one logical CPU more than the machine's cores, so that one is the readers' and the actors
get a core each. `concurrency` sets the number of actors.
"""
from __future__ import annotations

import os
from pathlib import Path

ROW_FILE, ROW_LINE = "source_file", "source_line"  # where each row came from: the id when the input has none
_TEXT, _ERROR = "__reviewlstm_text", "__reviewlstm_error"


def _ray():
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise RuntimeError('scoring with Ray needs Ray Data: pip install -e ".[ray]" (or pip install "ray[data]")') from None
    return ray


def ensure_ray(address: str | None = None, num_cpus: int | None = None):
    """A Ray to run on: the one already initialized, an existing cluster (`address`), or a local one."""
    ray = _ray()
    if not ray.is_initialized():
        # a local Ray gets one logical CPU more than the machine has cores: the tasks that read the
        # input take it, so the scoring actors can hold every core without starving them
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        kwargs = {"address": address} if address else {"num_cpus": num_cpus or cores + 1}
        ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False, **kwargs)
    return ray


class _Scorer:
    """One per actor: the model loaded once; a pandas batch in, the batch with its predictions out."""

    def __init__(self, model_path: str | None, long_text: str | None, text_column: str | None, threads: int):
        import torch
        from reviewlstm.inference.artifact import load_model
        from reviewlstm.inference.predict import Predictor
        torch.set_num_threads(threads)
        self.predictor = Predictor(load_model(model_path), long_text=long_text)
        self.text_column = text_column

    def __call__(self, batch):
        import pandas as pd
        from reviewlstm.io.data import text_problem
        from reviewlstm.inference.scoring import rate_rows
        if _TEXT in batch.columns:  # read by reviewlstm's readers: their verdict on each row
            texts, errors = batch[_TEXT].tolist(), batch[_ERROR].tolist()
            batch = batch.drop(columns=[_TEXT, _ERROR])
        else:
            texts = batch[self.text_column].tolist()
            errors = [None if (p := text_problem(t)) is None else f"text {p}" for t in texts]
        cols = pd.DataFrame(rate_rows(self.predictor, texts, errors), index=batch.index)
        # fixed types, so every block (and every Parquet file written) has the same schema
        cols["predicted_rating"] = cols["predicted_rating"].astype("Int64")
        for name in cols.columns:
            if name != "predicted_rating" and name != "error":
                cols[name] = cols[name].astype("float64")
        cols["error"] = cols["error"].astype("string")
        return pd.concat([batch, cols], axis=1)


def score_dataset(dataset, model: str | Path | None = None, text_column: str = "text", long_text: str | None = None,
                  batch_size: int = 4096, concurrency: int | None = None, actor_cpus: float = 1,
                  preserve_order: bool = False):
    """The Ray Dataset with the prediction columns added (predicted_rating, expected_rating,
    p_<rating>, known_share, error): lazily, as Ray does. Every row comes out; a row whose text is
    empty, missing or not a string gets an `error` and no prediction. Keep an id column in the
    dataset to join the output back (Ray has no row numbers); `score_files` makes one from each
    row's file and line. preserve_order=True keeps the input order (Ray then cannot let a fast block
    overtake a slow one: slower when blocks differ in cost)."""
    ray = _ray()
    from reviewlstm.inference.artifact import load_model
    loaded = load_model(model)  # fails here, as one line, before any actor starts
    if preserve_order:
        ray.data.DataContext.get_current().execution_options.preserve_order = True
    if concurrency is None:
        cpus = int(ray.cluster_resources().get("CPU", 1))
        concurrency = max(1, int((cpus - 1) // actor_cpus)) if cpus > 1 else 1
    return dataset.map_batches(_Scorer, batch_format="pandas", batch_size=batch_size, concurrency=concurrency,
                               num_cpus=actor_cpus,
                               fn_constructor_kwargs={"model_path": str(loaded.path), "long_text": long_text,
                                                      "text_column": text_column,
                                                      "threads": max(1, int(actor_cpus))})


def input_files(paths) -> list[str]:
    """Files named, and every CSV/TSV/JSONL/Parquet file (.gz too) in folders named, sorted."""
    from reviewlstm.io.data import DataError, detect_format
    out = []
    for p in [paths] if isinstance(paths, (str, Path)) else paths:
        p = Path(p)
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and not f.name.startswith(".") and _table(f))
            if not found:
                raise DataError(f"{p}: no CSV, TSV, JSONL or Parquet files in this folder")
            out += [str(f) for f in found]
        elif p.exists():
            detect_format(p)  # an unknown extension: one line, now
            out.append(str(p))
        else:
            raise DataError(f"{p}: no such file or folder")
    return out


def _table(path: Path) -> bool:
    from reviewlstm.io.data import DataError, detect_format
    try:
        return detect_format(path) != "sst"
    except DataError:
        return False


def _read_files(items, fmt: str | None, text_column: str | None, chunk: int = 4096):
    """Every row of each file through reviewlstm's own reader (a bad row comes with its error), as
    pandas batches of `chunk` rows: columnar blocks, not one Python dict per row through Ray."""
    import pandas as pd
    from reviewlstm.io.data import BadRows, Columns, read_examples
    for path in items["path"]:
        rows = []
        for e in read_examples(path, fmt=fmt, columns=Columns(text_column, None), require_rating=False,
                               ratings=False, on_bad="keep", bad=BadRows()):
            rows.append({**(e.row or {}), ROW_FILE: path, ROW_LINE: e.line, _TEXT: e.text, _ERROR: e.error})
            if len(rows) == chunk:
                yield pd.DataFrame(rows)
                rows = []
        if rows:
            yield pd.DataFrame(rows)


def score_files(paths, model: str | Path | None = None, fmt: str | None = None, text_column: str | None = None,
                **kwargs):
    """score_dataset over files (CSV, TSV, JSONL, Parquet, .gz; folders searched), one read task per
    file, each row with its `source_file` and `source_line`."""
    ray = _ray()
    files = input_files(paths)
    # blocks of a few thousand reviews (Ray's default is 128 MB, a whole file of them): a block is
    # one actor's task, so small blocks are what spreads one big file over every actor
    ray.data.DataContext.get_current().target_max_block_size = 2 * 1024 ** 2
    items = ray.data.from_items([{"path": f} for f in files], override_num_blocks=len(files))
    # its own resources (half a logical CPU), so Ray does not fuse reading into the scoring actors: a
    # file would then be read and scored by one actor alone
    rows = items.map_batches(_read_files, batch_size=1, batch_format="pandas", num_cpus=0.5,
                             fn_kwargs={"fmt": fmt, "text_column": text_column})
    return score_dataset(rows, model=model, **kwargs)


def score_to_parquet(paths, output: str | Path, model: str | Path | None = None, **kwargs) -> dict:
    """`reviewlstm predict --engine ray`: score files into Parquet files in the folder `output`.
    Returns the counts (rows, errors) read back from what was written."""
    import pyarrow.dataset as pads
    out = Path(output)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out}: the output folder is not empty (Ray writes its Parquet files there)")
    score_files(paths, model=model, **kwargs).write_parquet(str(out))
    table = pads.dataset(str(out), format="parquet")
    rows = table.count_rows()
    errors = table.count_rows(filter=pads.field("error").is_valid())
    return {"rows": rows, "errors": errors, "output": str(out), "files": len(list(out.glob("*.parquet")))}
