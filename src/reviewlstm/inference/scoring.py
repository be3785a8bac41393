"""Scoring a file: every row read, rated (or given its error) and written back, streaming, in
file order, through a temporary file renamed into place when whole; optionally on worker processes.
`api.score_file` is the entry point; `prediction_columns` is the one definition of the columns a
scored row gets (files, DataFrames, Ray)."""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from reviewlstm.inference.artifact import LoadedModel, load_model
from reviewlstm.io.data import BadRows, Columns, DataError, Example, detect_format, header_columns, read_examples
from reviewlstm.inference.predict import Prediction, Predictor
from reviewlstm.nn import fourgate
from reviewlstm.io.writers import Writer


def rate_rows(predictor: Predictor, texts: list, errors: list) -> list[dict]:
    """The prediction columns of each row: rated where `errors` has no message (None or NaN), else
    empty with that row's error. Tables everywhere (DataFrames, Ray) go through here."""
    good = [i for i, e in enumerate(errors) if not isinstance(e, str)]
    preds = dict(zip(good, predictor.predict([texts[i] for i in good])))
    ratings, with_set = predictor.config.ratings, predictor.coverage is not None
    labels = predictor.config.label_names
    return [prediction_columns(preds.get(i), ratings, None if i in preds else errors[i], with_set, labels)
            for i in range(len(texts))]


def prediction_columns(p: Prediction | None, ratings: list[int], error: str | None, with_set: bool = False,
                       labels: list[str] | None = None) -> dict:
    """The columns a scored row gets: the same in file scoring and in DataFrames (with_set: a coverage
    was asked, and set_low, set_high bound each row's rating set)."""
    row = {"predicted_rating": p.rating if p else None}
    if labels:  # a model that rates in words: the word beside the number
        row["predicted_label"] = p.label if p else None
    row["expected_rating"] = round(p.expected_rating, 4) if p else None
    for k, r in enumerate(ratings):
        row[f"p_{r}"] = round(p.probabilities[k], 5) if p else None
    if with_set:
        row["set_low"] = p.rating_set[0] if p else None
        row["set_high"] = p.rating_set[-1] if p else None
    row["known_share"] = p.known_share if p else None
    row["error"] = error  # why the row has no prediction; None when it has one
    return row


@dataclass
class ScoreSummary:
    rows: int          # rows written, with a prediction or an error
    output: Path
    bad_rows: BadRows  # rows with an error (or, with skip_bad_rows, skipped); bad_rows.rows: every row read
    seconds: float     # reading, scoring and writing
    skipped: bool = False       # bad rows were left out (skip_bad_rows), not written with an error
    build_seconds: float = 0.0  # compiling the fast kernel (first run on a machine), not in `seconds`

    @property
    def errors(self) -> int:
        """Rows written with an error instead of a prediction."""
        return 0 if self.skipped else self.bad_rows.count


def score_file(input_path: str | Path, output_path: str | Path, model: str | Path | LoadedModel | None = None,
               fmt: str | None = None, columns: Columns | None = None, skip_bad_rows: bool = False,
               chunk_size: int = 4096, progress: bool = True, long_text: str | None = None,
               workers: int | None = None, coverage: float | None = None) -> ScoreSummary:
    """Score every row of a file and write it back with its predictions, streaming: memory stays flat
    in the file's size. Output columns: every input column, then predicted_rating, expected_rating,
    p_<rating> for each rating on the scale, known_share (the share of its words the model knows) and
    error. Every row read is written, in order: one that cannot be rated (an empty text, bytes that
    are not UTF-8, a ragged CSV row) gets its `error` and no prediction; skip_bad_rows leaves such
    rows out instead (and counts them). A file that cannot be read past some line (an unclosed quote,
    a corrupt .gz) is an error, and nothing is written.

    workers: processes that tokenize and read the chunks, one thread each (this process reads and
    writes the file, in order). None: one per CPU for files of 20,000 rows or more, else none (a
    worker takes seconds to start). At most 2 x workers chunks are in flight, so memory stays flat.
    """
    import time
    from collections import deque
    from tqdm import tqdm
    loaded = model if isinstance(model, LoadedModel) else load_model(model)
    predictor = Predictor(loaded, long_text=long_text, coverage=coverage)
    cfg = loaded.config
    with_set = coverage is not None
    output_path = Path(output_path)
    try:
        out_fmt = detect_format(output_path)
    except DataError:  # --format names the input's format: the output's comes from its name alone
        raise DataError(f"{output_path}: cannot tell the output's format from its name: end it in .csv, .tsv, "
                        ".jsonl or .parquet (optionally .gz)") from None
    if out_fmt == "sst":
        raise DataError(f"{output_path}: write predictions as .csv, .tsv, .jsonl or .parquet")
    if output_path.is_dir():
        raise DataError(f"{output_path}: is a directory: name the output file (for example {output_path / 'scored.csv'})")
    if output_path.is_symlink():  # written through the link: the link stays, its target gets the output
        output_path = output_path.resolve()
    if Path(input_path).resolve() == output_path.resolve():
        raise DataError(f"{output_path}: the output would overwrite the input")
    if Path(input_path).name.startswith(f".{output_path.name}.part-") and \
            Path(input_path).resolve().parent == output_path.resolve().parent:
        raise DataError(f"{input_path}: this is another run's temporary output for {output_path}, not an input")
    if workers is not None and workers < 0:
        raise ValueError(f"workers must be >= 0, got {workers}")
    total = _count_rows(Path(input_path), fmt)
    kernel = fourgate.warm_up(rows=total)  # a first large job on this machine compiles the kernel, timed apart
    if kernel.held_back:
        print(f"reviewlstm: {total} rows: scored with the Python loop instead of waiting for the fast kernel's "
              "one-time build (`reviewlstm build-kernel` builds it now)", file=sys.stderr, flush=True)
    build_seconds = kernel.seconds if kernel.built_now else 0.0
    start = time.perf_counter()
    bad = BadRows()
    rows = read_examples(input_path, fmt=fmt, columns=columns, scale=(cfg.scale_min, cfg.scale_max),
                         require_rating=False, on_bad="skip" if skip_bad_rows else "keep", bad=bad,
                         ratings=False)
    n_workers = _worker_count(workers, total, loaded)
    bar = tqdm(total=total, unit="rows", disable=None if progress else True, file=sys.stderr,
               dynamic_ncols=True)
    writer = Writer(output_path, out_fmt, cfg.ratings, with_set=with_set,
                    infer_numbers=detect_format(input_path, fmt) in ("csv", "tsv"),
                    leading=header_columns(input_path, fmt),
                    trailing=list(prediction_columns(None, cfg.ratings, None, with_set, cfg.label_names)))
    expected = bad  # rows read (good and bad) are counted in bad.rows as the reader goes
    pool = _scoring_pool(loaded.path, long_text, n_workers, coverage, kernel.ready) if n_workers > 1 else None
    pending: deque = deque()  # (chunk, async result), in file order
    n, ok = 0, False

    ours = set(prediction_columns(None, cfg.ratings, None, with_set, cfg.label_names))

    def write(chunk, preds):
        nonlocal n
        for e in chunk:
            if e.row and not ours.isdisjoint(e.row):  # the user's values are never overwritten by ours
                taken = ", ".join(c for c in e.row if c in ours)
                raise DataError(f"{input_path}:{e.line}: the input already has column(s) {taken}, which scoring "
                                "writes: rename them (or score the file they came from); nothing was written")
        preds = iter(preds)  # one per row without an error, in order
        writer.write([_output_row(e, None if e.error else next(preds), cfg.ratings, with_set, cfg.label_names)
                      for e in chunk])
        n += len(chunk)
        bar.update(len(chunk))

    with kernel.hold():  # until the job ends, no call of the model starts the build held back
        try:
            chunk: list[Example] = []
            for ex in _chained(rows):
                if ex is not None:
                    chunk.append(ex)
                if chunk and (ex is None or len(chunk) >= chunk_size):
                    rated = [e for e in chunk if e.error is None]
                    texts, tokens = [e.text for e in rated], [e.tokens for e in rated]
                    if pool is None:
                        write(chunk, predictor.predict(texts, tokens))
                    else:
                        pending.append((chunk, pool.submit(_worker_predict, texts, tokens)))
                        while len(pending) > 2 * n_workers:
                            done, result = pending.popleft()
                            write(done, result.result())
                    chunk = []
            while pending:
                done, result = pending.popleft()
                write(done, result.result())
            skipped = bad.count if skip_bad_rows else 0
            if n + skipped != expected.rows:  # every row read is written or reported, never dropped
                raise RuntimeError(f"{input_path}: read {expected.rows} rows but wrote {n} and skipped {skipped}")
            ok = True
        finally:
            if pool is not None:
                pool.shutdown(wait=ok, cancel_futures=not ok)
            writer.close(keep=ok)  # a run stopped by a bad row leaves no half-written output behind
            bar.close()
    return ScoreSummary(n, output_path, bad, time.perf_counter() - start, skip_bad_rows, build_seconds)


def _worker_count(workers: int | None, total: int | None, loaded: LoadedModel) -> int:
    if workers is not None:
        return workers
    if next(loaded.model.parameters()).device.type != "cpu":  # one GPU process beats CPU workers
        return 0
    if total is None or total < 20_000 or not (loaded.path and Path(loaded.path).is_dir()):
        return 0
    return min(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1, 8)


def _scoring_pool(model_path, long_text: str, n: int, coverage: float | None = None, kernel: bool = True):
    """Worker processes, one thread each; `kernel`: the compiled loop the parent readied (warm_up),
    loaded by every worker from the cache, never built by one."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    # spawn, not fork: a forked copy of a process whose OpenMP threads have started can hang; and an
    # executor, not a Pool: a worker that dies surfaces as an error instead of an endless respawn
    return ProcessPoolExecutor(n, mp_context=multiprocessing.get_context("spawn"), initializer=_worker_init,
                               initargs=(str(model_path), long_text, coverage, kernel))


_worker_predictor: Predictor | None = None


def _worker_init(model_path: str, long_text: str, coverage: float | None = None, kernel: bool = True) -> None:
    global _worker_predictor
    _die_with_parent()
    torch.set_num_threads(1)  # one core each: the workers are the parallelism
    fourgate.warm_up(build=kernel)  # the parent's choice: the cached loop, or the Python loop and no build
    _worker_predictor = Predictor(load_model(model_path), long_text=long_text, coverage=coverage)


def _die_with_parent() -> None:
    """Linux: this process gets SIGKILL when the process that started it dies, however it dies (even
    kill -9), so no orphaned scorer keeps holding memory and the caller's output."""
    if sys.platform.startswith("linux"):
        import ctypes
        import signal
        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except OSError:
            pass
        if os.getppid() == 1:  # the parent died before the call above
            os._exit(1)


def _worker_predict(texts: list[str], tokens: list) -> list[Prediction]:
    return _worker_predictor.predict(texts, tokens)


def _chained(rows):
    """The rows, then None to flush the last chunk."""
    yield from rows
    yield None


def _output_row(e: Example, p: Prediction | None, ratings: list[int], with_set: bool = False,
                labels: list[str] | None = None) -> dict:
    row = dict(e.row) if e.row is not None else {"text": e.text, "rating": e.rating}
    row.update(prediction_columns(p, ratings, e.error, with_set, labels))
    return row


def _count_rows(path: Path, fmt: str | None) -> int | None:
    """Rows to expect, for the progress bar (a quick newline count; Parquet knows its own)."""
    try:
        if not path.is_file():  # a pipe (/dev/stdin) is read once, by the reader
            return None
        f = detect_format(path, fmt)
        if f == "parquet":
            import pyarrow.parquet as pq
            return pq.ParquetFile(path).metadata.num_rows
        n = 0
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 22), b""):
                n += block.count(b"\n")
        return max(n - (1 if f in ("csv", "tsv") else 0), 0)
    except Exception:  # only for the bar: reading errors are reported by the reader itself
        return None
