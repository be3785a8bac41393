"""Scoring a file: every row read, rated (or given its error) and written back, streaming, in
file order, through a temporary file renamed into place when whole; optionally on worker processes.
`api.score_file` is the entry point; `prediction_columns` is the one definition of the columns a
scored row gets (files, DataFrames, Ray)."""
from __future__ import annotations

import codecs
import contextlib
import csv
import io
import json
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from . import settings
from .artifact import LoadedModel, load_model
from .data import BadRows, Columns, DataError, Example, detect_format, read_examples
from .predict import Prediction, Predictor


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
    from .fourgate import compiled
    total = _count_rows(Path(input_path), fmt)
    # a file this small is scored sooner by the Python loop than after the kernel's one-time build
    build_now = None if total is None or total >= settings.build_rows(BUILD_ROWS) else False
    if build_now is False and not compiled.tried() and not compiled.built() and compiled.enabled():
        print(f"reviewlstm: {total} rows: scored with the Python loop instead of waiting for the fast kernel's "
              "one-time build (`reviewlstm build-kernel` builds it now)", file=sys.stderr, flush=True)
    fresh, build = not compiled.tried(), time.perf_counter()
    compiled.load(build_now)  # a first run on this machine compiles the kernel: timed apart from the scoring
    build_seconds = time.perf_counter() - build if fresh and compiled.built_now() else 0.0
    start = time.perf_counter()
    bad = BadRows()
    rows = read_examples(input_path, fmt=fmt, columns=columns, scale=(cfg.scale_min, cfg.scale_max),
                         require_rating=False, skip_bad_rows=skip_bad_rows, bad=bad, ratings=False,
                         keep_bad_rows=not skip_bad_rows)
    n_workers = _worker_count(workers, total, loaded)
    bar = tqdm(total=total, unit="rows", disable=None if progress else True, file=sys.stderr,
               dynamic_ncols=True)
    writer = _Writer(output_path, out_fmt, cfg.ratings, with_set=with_set,
                     infer_numbers=detect_format(input_path, fmt) in ("csv", "tsv"))
    expected = bad  # rows read (good and bad) are counted in bad.rows as the reader goes
    pool = _scoring_pool(loaded.path, long_text, n_workers, coverage, build_now) if n_workers > 1 else None
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

    hold = compiled.no_build() if build_now is False else contextlib.nullcontext()
    hold.__enter__()  # left in the `finally` below: until then no call of the model starts a build
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
        hold.__exit__(None, None, None)
    return ScoreSummary(n, output_path, bad, time.perf_counter() - start, skip_bad_rows, build_seconds)


# Rows from which a file is scored sooner by building the kernel first (once per machine) than by the
# Python loop: the break-even `python bench/compile_threshold.py` measures (BENCHMARKS.md, "Scoring a
# large file"). Below it a first job does not wait for the build; `reviewlstm build-kernel` builds it
# (REVIEWLSTM_BUILD_ROWS moves it)
BUILD_ROWS = 200_000


def _worker_count(workers: int | None, total: int | None, loaded: LoadedModel) -> int:
    if workers is not None:
        return workers
    if next(loaded.model.parameters()).device.type != "cpu":  # one GPU process beats CPU workers
        return 0
    if total is None or total < 20_000 or not (loaded.path and Path(loaded.path).is_dir()):
        return 0
    return min(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1, 8)


def _scoring_pool(model_path, long_text: str, n: int, coverage: float | None = None, build: bool | None = None):
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from .fourgate import compiled
    compiled.load(build)  # built (if ever) here, once, not by every worker at the same time
    # spawn, not fork: a forked copy of a process whose OpenMP threads have started can hang; and an
    # executor, not a Pool: a worker that dies surfaces as an error instead of an endless respawn
    return ProcessPoolExecutor(n, mp_context=multiprocessing.get_context("spawn"), initializer=_worker_init,
                               initargs=(str(model_path), long_text, coverage, compiled.built()))


_worker_predictor: Predictor | None = None


def _worker_init(model_path: str, long_text: str, coverage: float | None = None, kernel: bool = True) -> None:
    global _worker_predictor
    _die_with_parent()
    torch.set_num_threads(1)  # one core each: the workers are the parallelism
    if not kernel:  # the parent chose the Python loop: no worker builds the kernel behind its back
        from .fourgate import compiled
        compiled.allow_build(False)
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


def _empty_schema(ratings: list[int], with_set: bool = False):
    """The prediction columns' types: the schema of a Parquet output with no rows."""
    import pyarrow as pa
    return pa.schema([("predicted_rating", pa.int64()), ("expected_rating", pa.float64())]
                     + [(f"p_{r}", pa.float64()) for r in ratings]
                     + ([("set_low", pa.int64()), ("set_high", pa.int64())] if with_set else [])
                     + [("known_share", pa.float64()), ("error", pa.string())])


def _keep_bytes(exc: UnicodeEncodeError):
    """Encoding errors handler: bytes that were not UTF-8 in the input (read as surrogates) are written
    back as those same bytes; a lone surrogate from a JSON escape is written as its escape."""
    out = bytearray()
    for ch in exc.object[exc.start:exc.end]:
        out += bytes([ord(ch) - 0xdc00]) if "\udc80" <= ch <= "\udcff" else f"\\u{ord(ch):04x}".encode()
    return bytes(out), exc.end


codecs.register_error("reviewlstm.keep_bytes", _keep_bytes)


class _Writer:
    """Streaming CSV / TSV / JSONL / Parquet writer (gzip-compressed when the name ends .gz, any case).

    Rows go to a temporary file beside the output whose name is unique to this run (two runs never
    share one), renamed to the output once every row is written. Columns: every key any row has, in
    the order first seen (JSONL rows may differ): CSV outputs that meet a new key late are rewritten
    once at the end with the whole set, missing values empty. Values keep their bytes: CSV and TSV
    write an input's non-UTF-8 bytes back as they were (the row carries an error naming them).
    TSV is tab-separated without quoting: a tab or line break inside a value is written as \\t, \\n.
    Parquet: each chunk's columns typed (a CSV's numbers as numbers, as pyarrow's CSV reader
    types them); a column whose type changes from chunk to chunk is widened at the end (null to
    anything, int to float, else to string), so no late row can fail the file; no rows is a valid
    file with the prediction columns."""

    def __init__(self, path: Path, fmt: str, ratings: list[int], infer_numbers: bool = False, with_set: bool = False):
        import uuid
        self.final, self.fmt = path, fmt
        self.gz = path.suffix.lower() == ".gz"
        self.path = path.with_name(f".{path.name}.part-{os.getpid()}-{uuid.uuid4().hex[:8]}")
        path.parent.mkdir(parents=True, exist_ok=True)
        self.fh = None if fmt == "parquet" else self._open(self.path, "w")
        self.columns: dict[str, None] = {}   # every key seen, in order
        self.written: list[str] | None = None  # the header written (CSV)
        self.csv = None
        self.spill = None                    # CSV: rows after a new key, as JSON lines
        self.pq = None
        self.schema = None                   # Parquet: the current part's schema
        self.parts: list[Path] = []          # Parquet: one file per schema, merged at the end
        self.ratings = ratings  # for the prediction columns of an output with no rows
        self.with_set = with_set
        self.infer_numbers = infer_numbers  # the input was CSV / TSV: its numbers arrive as text

    def _open(self, path: Path, mode: str):
        import gzip
        errors = "reviewlstm.keep_bytes" if self.fmt in ("csv", "tsv") else "backslashreplace"
        if self.gz:
            return io.TextIOWrapper(gzip.open(path, mode + "b"), encoding="utf-8", newline="", errors=errors)
        return open(path, mode, encoding="utf-8", newline="", errors=errors)

    def write(self, rows: list[dict]) -> None:
        for r in rows:
            for k in r:
                if k not in self.columns:
                    self.columns[k] = None
        try:
            self._write(rows)
        except OSError as e:
            raise OSError(e.errno, f"cannot write {self.final}: {e.strerror or e}; nothing was written there") from None

    def _dict_writer(self, fh, fieldnames):
        if self.fmt == "tsv":
            return csv.DictWriter(fh, fieldnames=fieldnames, delimiter="\t", quoting=csv.QUOTE_NONE, quotechar=None,
                                  escapechar=None, lineterminator="\n")
        return csv.DictWriter(fh, fieldnames=fieldnames)

    def _cells(self, row: dict) -> dict:
        row = _flat(row)
        if self.fmt == "tsv":
            return {k: v.replace("\t", "\\t").replace("\r", "\\r").replace("\n", "\\n") if isinstance(v, str) else v
                    for k, v in row.items()}
        return row

    def _write(self, rows: list[dict]) -> None:
        if self.fmt == "jsonl":
            for r in rows:
                self.fh.write(json.dumps(r, ensure_ascii=False, default=str) + "\n")
        elif self.fmt in ("csv", "tsv"):
            if self.csv is None:
                self.written = list(self.columns)
                self.csv = self._dict_writer(self.fh, self.written)
                self.csv.writeheader()
            if self.spill is None and list(self.columns) != self.written:
                # a key the header lacks: the rows from here wait as JSON lines, merged in at the end
                self.spill = open(self.path.with_name(self.path.name + ".spill"), "w", encoding="utf-8",
                                  errors="surrogatepass")
            if self.spill is None:
                self.csv.writerows([self._cells(r) for r in rows])
            else:
                for r in rows:
                    self.spill.write(json.dumps(r, ensure_ascii=False, default=str) + "\n")
        else:
            import pyarrow as pa
            import pyarrow.parquet as pq
            table = _arrow_table(rows, list(self.columns), self.infer_numbers)
            if self.pq is not None and table.schema.names == self.schema.names and all(
                    a.type.equals(b.type) or pa.types.is_null(a.type) for a, b in zip(table.schema, self.schema)):
                table = table.cast(self.schema)  # a column empty in this chunk takes the part's type
            if self.pq is not None and not table.schema.equals(self.schema):  # another schema: a new part
                self.pq.close()
                self.pq = None
            if self.pq is None:
                self.schema = table.schema
                self.parts.append(self.path.with_name(self.path.name + f".{len(self.parts)}"))
                self.pq = pq.ParquetWriter(self.parts[-1], self.schema)
            self.pq.write_table(table)

    def close(self, keep: bool = True) -> None:
        try:
            if self.fh:
                self.fh.close()
            if self.spill:
                self.spill.close()
            if self.pq:
                self.pq.close()
            if keep:
                self._finish()
        except OSError as e:
            keep = False
            raise OSError(e.errno, f"cannot write {self.final}: {e.strerror or e}; nothing was written there") from None
        finally:
            if keep and self.path.exists():
                self.path.replace(self.final)
            else:
                self.path.unlink(missing_ok=True)
            for part in self.parts:
                part.unlink(missing_ok=True)
            self.path.with_name(self.path.name + ".spill").unlink(missing_ok=True)

    def _finish(self) -> None:
        if self.spill is not None:
            # a key first met after the header was written: rewrite once with every column
            full = self.path.with_name(self.path.name + ".full")
            delim = "\t" if self.fmt == "tsv" else ","
            with self._open(self.path, "r") as src, self._open(full, "w") as dst, \
                    open(self.path.with_name(self.path.name + ".spill"), "r", encoding="utf-8", errors="surrogatepass") as spill:
                out = self._dict_writer(dst, list(self.columns))
                out.writeheader()
                reader = csv.reader(src, delimiter=delim, **({"quoting": csv.QUOTE_NONE} if self.fmt == "tsv" else {}))
                header = next(reader)
                for fields in reader:
                    out.writerow(dict(zip(header, fields)))
                for line in spill:
                    out.writerow(self._cells(json.loads(line)))
            full.replace(self.path)
        if self.fmt == "parquet":
            _merge_parts(self.parts, self.path, self.ratings, self.with_set)


def _arrow_table(rows: list[dict], columns: list[str], infer_numbers: bool):
    """One chunk as an Arrow table: a column of numbers written as text (a CSV's) typed as numbers, a
    column holding values of several kinds (an id that turns from int to str, nested values beside
    scalars) as text, lone surrogates escaped (Parquet strings are UTF-8)."""
    import pyarrow as pa
    arrays, fields = [], []
    for name in columns:
        values = [r.get(name) for r in rows]
        kinds = {type(v) for v in values if v is not None}
        if kinds == {str} and infer_numbers:
            values = _typed_strings(values)
            kinds = {type(v) for v in values if v is not None}
        if kinds == {int, float}:
            values = [float(v) if v is not None else None for v in values]
        elif len(kinds) > 1:
            values = [None if v is None else v if isinstance(v, str) else json.dumps(v, ensure_ascii=False, default=str)
                      for v in values]
        try:
            array = pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError, UnicodeEncodeError, OverflowError):
            array = pa.array([None if v is None else _utf8(v if isinstance(v, str) else
                              json.dumps(v, ensure_ascii=False, default=str)) for v in values], pa.string())
        arrays.append(array)
        fields.append(pa.field(name, array.type))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def _typed_strings(values: list):
    """Strings that are all integers (or all numbers) as ints (floats), empty ones as missing, the way
    pyarrow's CSV reader types a column; anything else unchanged."""
    present = [v for v in values if v is not None and v.strip()]
    if not present or not all(_NUMBER.match(v) for v in present):
        return values
    if all(_INTEGER.match(v) for v in present):
        typed = [int(v) if v is not None and v.strip() else None for v in values]
        return values if any(abs(t) >= 2 ** 63 for t in typed if t is not None) else typed
    return [float(v) if v is not None and v.strip() else None for v in values]


_NUMBER = re.compile(r"^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$", re.ASCII)
_INTEGER = re.compile(r"^\s*[+-]?\d+\s*$", re.ASCII)


def _utf8(value: str) -> str:
    try:
        value.encode("utf-8")
        return value
    except UnicodeEncodeError:
        return value.encode("utf-8", "backslashreplace").decode("utf-8")


def _merge_parts(parts: list[Path], path: Path, ratings: list[int], with_set: bool = False) -> None:
    """The parts (one per schema met) as one Parquet file, each column widened to hold every part's
    values: null to the other type, int to float, anything else mixed to string."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    if not parts:  # no rows: a valid file with the prediction columns, not zero bytes
        pq.write_table(_empty_schema(ratings, with_set).empty_table(), path)
        return
    if len(parts) == 1:
        parts[0].replace(path)
        return
    types: dict[str, list] = {}
    for part in parts:
        for f in pq.ParquetFile(part).schema_arrow:
            types.setdefault(f.name, []).append(f.type)
    schema = pa.schema([(name, _widest(ts)) for name, ts in types.items()])
    with pq.ParquetWriter(path, schema) as writer:
        for part in parts:
            for batch in pq.ParquetFile(part).iter_batches():
                table = pa.Table.from_batches([batch])
                cols = [_cast(table.column(f.name), f.type) if f.name in table.column_names
                        else pa.nulls(len(table), f.type) for f in schema]
                writer.write_table(pa.Table.from_arrays(cols, schema=schema))


def _widest(types: list):
    import pyarrow as pa
    real = {t for t in types if not pa.types.is_null(t)}
    if not real:
        return pa.null()
    if len(real) == 1:
        return real.pop()
    if all(pa.types.is_integer(t) or pa.types.is_floating(t) for t in real):
        return pa.float64()
    return pa.string()


def _cast(column, to):
    import pyarrow as pa
    if column.type.equals(to):
        return column
    if pa.types.is_string(to) and (pa.types.is_nested(column.type) or pa.types.is_struct(column.type)):
        return pa.array([None if v is None else json.dumps(v, ensure_ascii=False, default=str)
                         for v in column.to_pylist()], pa.string())
    return column.cast(to)


def _flat(row: dict) -> dict:
    """A row for CSV: nested values (JSONL objects and lists) written as JSON, not as Python reprs."""
    return {k: json.dumps(v, ensure_ascii=False) if isinstance(v, (dict, list)) else v for k, v in row.items()}
