"""The output side of the I/O layer, beside the readers (data.py): scored rows streamed to CSV, TSV,
JSONL or Parquet (gzip when the name ends .gz), through a temporary file renamed into place only when
whole, the input's bytes and numbers kept as they were read."""
from __future__ import annotations

import codecs
import csv
import io
import json
import os
import re
from pathlib import Path


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


class Writer:
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

    def __init__(self, path: Path, fmt: str, ratings: list[int], infer_numbers: bool = False, with_set: bool = False,
                 leading: list[str] | None = None, trailing: list[str] | None = None):
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
        # an output with no rows (every row skipped as bad) still has its header: the input's
        # columns (`leading`), then the prediction columns (`trailing`)
        self.leading, self.trailing = list(leading or []), list(trailing or [])

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
        if self.fmt in ("csv", "tsv") and self.csv is None and (self.leading or self.trailing):
            with self._open(self.path, "w") as fh:  # no row came: the header alone
                self._dict_writer(fh, list(dict.fromkeys(self.leading + self.trailing))).writeheader()
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
            _merge_parts(self.parts, self.path, self.ratings, self.with_set, self.leading)


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


def _merge_parts(parts: list[Path], path: Path, ratings: list[int], with_set: bool = False,
                 leading: list[str] | None = None) -> None:
    """The parts (one per schema met) as one Parquet file, each column widened to hold every part's
    values: null to the other type, int to float, anything else mixed to string."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    if not parts:  # no rows: a valid file with the input's and the prediction columns, not zero bytes
        ours = _empty_schema(ratings, with_set)
        schema = pa.schema([(c, pa.string()) for c in leading or [] if c not in ours.names] + list(ours))
        pq.write_table(schema.empty_table(), path)
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
