"""Reading reviews: SST-5 trees, CSV / TSV / JSONL / Parquet files, and the SST-5 download.

Every reader yields :class:`Example` rows and streams: a file larger than memory can be scored.
Bad input is never dropped silently: it raises :class:`DataError`, one line naming the file, the
line (or Parquet row) and the reason, or, with ``on_bad="skip"``, is counted in a
:class:`BadRows` report that the caller prints.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import shutil
import sys
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Literal

# A quoted field may hold a whole long review (many lines, 100k+ characters); one over this many
# characters is taken for a missing closing quote (nothing after it could be trusted), and reading
# stops there: an unclosed quote must not read a huge file into memory.
MAX_FIELD_CHARS = 16 * 1024 * 1024
# the columns found without --text-column / --rating-column, first match wins (compared without
# case): the common export names, Amazon's reviewText / overall and Yelp's stars among them
TEXT_COLUMNS = ("text", "review", "review_text", "reviewtext", "review_body", "content", "body", "sentence", "comment")
RATING_COLUMNS = ("rating", "stars", "star", "overall", "label", "score", "sentiment", "review_score")
FORMATS = ("sst", "csv", "tsv", "jsonl", "parquet")
# a bad row: stop at it, leave it out (counted), or yield it with its `error` (scoring: every row comes back)
OnBad = Literal["raise", "skip", "keep"]

SST5_URL = "https://nlp.stanford.edu/sentiment/trainDevTestTrees_PTB.zip"
SST5_MD5 = "5c3b23ce88089053fd3efeb4a34f614d"


class DataError(ValueError):
    """Bad input: its message is one line, 'FILE:LINE: reason' or 'FILE: reason'."""


@dataclass
class Example:
    text: str                          # the review as given (SST: tokens joined by spaces)
    rating: int | None                 # on the file's scale; None when the file has no ratings
    tokens: list[str] | None = None    # already tokenized (SST), else None: the model tokenizes
    line: int = 0                      # 1-based line (or row) in its file, for messages
    row: dict | None = None            # every column of the input row, for writing it back
    error: str | None = None           # on_bad "keep": why this row cannot be rated (it has no text then)


@dataclass
class BadRows:
    """Rows skipped with --skip-bad-rows: how many, why, and the first few places."""

    count: int = 0
    reasons: dict = field(default_factory=dict)
    first: list = field(default_factory=list)
    rows: int = 0       # every row read, good and bad: the number the caller's output must account for
    columns: dict = field(default_factory=dict)  # a table's columns as found: {"text": name, "rating": name}

    def columns_taken(self) -> str:
        """'text column "reviewText", rating column "overall"' when a table's columns were found under
        other names than text and rating (empty otherwise)."""
        taken = [f'{kind} column "{name}"' for kind, name in self.columns.items() if name and name != kind]
        return ", ".join(taken)

    def add(self, message: str, reason: str) -> None:
        self.count += 1
        self.reasons[reason] = self.reasons.get(reason, 0) + 1
        if len(self.first) < 10:
            self.first.append(message)

    def summary(self) -> str:
        if not self.count:
            return "no bad rows"
        why = ", ".join(f"{n} {r}" for r, n in sorted(self.reasons.items(), key=lambda kv: -kv[1]))
        lines = "; ".join(self.first)
        more = f" and {self.count - len(self.first)} more" if self.count > len(self.first) else ""
        return f"skipped {self.count} bad row(s): {why}: {lines}{more}"


# ----------------------------------------------------------------------------------------- SST


def parse_tree(line: str) -> tuple[int, list[str], list[tuple[int, list[str]]]]:
    """One PTB tree line -> (root label, its tokens, [(label, tokens) for every subtree]).

    A leaf is "(label text)", where text runs to the closing bracket and may hold a space
    ("(2 8 1\\/2)"): splitting leaves on spaces would break there.
    """
    line = line.strip()
    pos, n = 0, len(line)
    phrases: list[tuple[int, list[str]]] = []

    def node() -> tuple[int, list[str]]:
        nonlocal pos
        if line[pos] != "(":
            raise ValueError(f"expected '(' at column {pos + 1}")
        pos += 1
        end = pos
        while end < n and line[end] not in " ()":
            end += 1
        label = int(line[pos:end])
        pos = end + 1 if end < n and line[end] == " " else end
        tokens: list[str] = []
        if pos < n and line[pos] == "(":
            while pos < n and line[pos] == "(":
                tokens += node()[1]
                while pos < n and line[pos] == " ":
                    pos += 1
        else:
            close = line.index(")", pos)
            tokens = [line[pos:close]]
            pos = close
        if pos >= n or line[pos] != ")":
            raise ValueError(f"expected ')' at column {pos + 1}")
        pos += 1
        if not 0 <= label <= 4:
            raise ValueError(f"label {label} is not in 0..4")
        phrases.append((label, tokens))
        return label, tokens

    try:
        label, tokens = node()
    except RecursionError:
        raise ValueError("the tree is nested too deep to be a sentence's parse") from None
    if pos != n:
        raise ValueError(f"unexpected text after the tree at column {pos + 1}")
    return label, tokens, phrases


def read_sst(path: str | Path, phrases: bool = False, on_bad: OnBad = "raise",
             bad: BadRows | None = None) -> Iterator[Example]:
    """SST-5 trees, one a line; labels 0..4 become ratings 1..5.

    phrases=False: one example per sentence (its root). phrases=True: every labelled subtree, each
    distinct (phrase, label) pair once (train's 318,582 subtrees hold 159,274 such pairs).
    """
    path = Path(path)
    seen: set[tuple[str, int]] = set()
    with _open_text(path) as f:
        for lineno, line in enumerate(_lines(path, f), 1):
            if not line.strip():
                continue
            try:
                _check_decoded(line)
                label, tokens, subtrees = parse_tree(line)
            except (ValueError, IndexError) as e:
                msg = f"{path}:{lineno}: not an SST tree: {e}"
                if on_bad == "raise":
                    raise DataError(msg) from None
                (bad if bad is not None else BadRows()).add(msg, "not an SST tree")
                if on_bad == "keep":
                    yield Example(text="", rating=None, line=lineno, row={}, error=f"not an SST tree: {e}")
                continue
            pairs = subtrees[::-1] if phrases else [(label, tokens)]  # root first
            for lab, toks in pairs:
                text = " ".join(toks)
                if phrases:
                    if (text, lab) in seen:
                        continue
                    seen.add((text, lab))
                yield Example(text=text, rating=lab + 1, tokens=toks, line=lineno)


def download_sst5(cache_dir: str | Path | None = None, url: str = SST5_URL, md5: str = SST5_MD5,
                  progress: bool = True) -> Path:
    """Fetch the canonical SST archive once, check its MD5, unpack train/dev/test.txt; returns their folder.

    Cached in cache_dir (default $REVIEWLSTM_CACHE or ~/.cache/reviewlstm): a second call
    downloads nothing. A wrong checksum deletes the download and raises.
    """
    from reviewlstm.settings import cache_root
    cache = Path(cache_dir) if cache_dir else cache_root()
    out = cache / "sst5"
    if all((out / f"{s}.txt").exists() for s in ("train", "dev", "test")):
        return out
    cache.mkdir(parents=True, exist_ok=True)
    archive = cache / "trainDevTestTrees_PTB.zip"
    if not archive.exists() or _md5(archive) != md5:
        partial = archive.with_suffix(".part")
        try:
            with urllib.request.urlopen(url, timeout=60) as resp, open(partial, "wb") as f:
                total = int(resp.headers.get("Content-Length") or 0)
                bar = _progress(total, f"downloading {url}", progress)
                while chunk := resp.read(1 << 16):
                    f.write(chunk)
                    bar.update(len(chunk))
                bar.close()
        except (urllib.error.URLError, TimeoutError, ConnectionError) as e:
            partial.unlink(missing_ok=True)
            why = getattr(e, "reason", None) or e
            raise DataError(f"{url}: cannot download ({why}): no network here? Fetch the archive on a machine that "
                            f"has one and put it at {archive} (its MD5 is checked), or pass --url") from None
        got = _md5(partial)
        if got != md5:
            partial.unlink()
            raise DataError(f"{url}: MD5 {got} does not match the expected {md5}; the download was deleted")
        partial.replace(archive)
    out.mkdir(exist_ok=True)
    with zipfile.ZipFile(archive) as z:
        for split in ("train", "dev", "test"):
            with z.open(f"trees/{split}.txt") as src, open(out / f"{split}.txt", "wb") as dst:
                shutil.copyfileobj(src, dst)
    return out


def _md5(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "md5").hexdigest()


def _progress(total: int, desc: str, enabled: bool):
    from tqdm import tqdm
    return tqdm(total=total or None, desc=desc, unit="B", unit_scale=True, disable=None if enabled else True, file=sys.stderr)


# ------------------------------------------------------------------------------------ tabular


@dataclass
class Columns:
    text: str | None = None    # None: pick from TEXT_COLUMNS
    rating: str | None = None  # None: pick from RATING_COLUMNS


def detect_format(path: str | Path, fmt: str | None = None) -> str:
    """The format named, or the one the extension says (.txt / .trees: SST trees)."""
    if fmt:
        if fmt not in FORMATS:
            raise DataError(f"{path}: unknown format {fmt!r}: expected one of {', '.join(FORMATS)}")
        return fmt
    suffixes = [s.lower() for s in Path(path).suffixes]
    ext = suffixes[-1] if suffixes else ""
    if ext == ".gz" and len(suffixes) > 1:
        ext = suffixes[-2]
    by_ext = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl",
              ".json": "jsonl", ".parquet": "parquet", ".pq": "parquet", ".txt": "sst", ".trees": "sst"}
    if ext not in by_ext:
        raise DataError(f"{path}: cannot tell the format from the extension {ext or '(none)'!r}: "
                        f"use .csv, .tsv, .jsonl, .parquet or .txt (SST trees), or pass --format")
    return by_ext[ext]


def read_examples(path: str | Path, fmt: str | None = None, columns: Columns | None = None,
                  scale: tuple[int, int] = (1, 5), require_rating: bool = True, phrases: bool = False,
                  on_bad: OnBad = "raise", bad: BadRows | None = None, ratings: bool = True,
                  scale_hint: bool = True, labels: list[str] | None = None) -> Iterator[Example]:
    """Stream the examples of any supported file (ratings=False: ignore any rating column, as when
    scoring a file; labels: the rating column holds these words, lowest first, read as 1..K). Raises
    DataError on the first bad row (on_bad "raise"); "skip": bad rows are counted in `bad` and left
    out; "keep" (scoring: every row comes back): a bad row is yielded with its `error` and counted in
    `bad` too. A file that cannot be read past a row
    (an unclosed quote, a corrupt .gz) is an error either way. An empty file is an error."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file")
    if path.is_dir():
        raise DataError(f"{path}: is a directory, expected a file")
    fmt = detect_format(path, fmt)
    bad = bad if bad is not None else BadRows()
    if fmt == "sst":
        if scale != (1, 5):
            raise DataError(f"{path}: SST-5 trees are rated 1..5, not {scale[0]}..{scale[1]}")
        rows = read_sst(path, phrases=phrases, on_bad=on_bad, bad=bad)
    else:
        rows = _read_table(path, fmt, columns or Columns(), scale, require_rating, on_bad, bad, ratings, scale_hint,
                           labels)
    n = 0
    skipped = bad.count
    for ex in rows:
        n += 1
        yield ex
    flagged = bad.count - skipped  # bad rows met here: yielded ("keep") or skipped
    bad.rows += n if on_bad == "keep" else n + flagged
    if n == 0 and bad.count == 0:
        raise DataError(f"{path}: no rows: the file is empty" + ("" if fmt == "sst" else " or holds only a header"))


def _open_text(path: Path):
    """UTF-8 text (a leading BOM dropped, gzip or not) that keeps undecodable bytes as surrogates, so
    the bad row can be named, not the whole file."""
    if path.suffix.lower() == ".gz":
        import gzip
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8-sig", errors="surrogateescape", newline="")
    return open(path, encoding="utf-8-sig", errors="surrogateescape", newline="")


def _lines(path: Path, f) -> Iterator[str]:
    """The file's lines; a corrupt or cut .gz is one DataError naming the file and the line reached."""
    import gzip
    import zlib
    n = 0
    try:
        for line in f:
            n += 1
            yield line
    except gzip.BadGzipFile:
        raise DataError(f"{path}: not a gzip file (the name ends in .gz)") from None
    except (EOFError, zlib.error, OSError) as e:
        raise DataError(f"{path}:{n + 1}: the gzip data is corrupt or cut short ({e})") from None


_UNDECODED = re.compile("[\udc80-\udcff]")  # a byte that was not UTF-8, as surrogateescape reads it


def unicode_problem(text: str, decoded: bool = True) -> str | None:
    """The one check of a text's characters: a lone surrogate is not a character. decoded: the text
    was decoded from bytes with surrogateescape (files, command-line arguments), so a surrogate in
    \udc80-\udcff is a byte that was not UTF-8, and said as such."""
    ch = next((c for c in text if "\ud800" <= c <= "\udfff"), None)
    if ch is None:
        return None
    if decoded and "\udc80" <= ch <= "\udcff":
        return f"undecodable byte 0x{ord(ch) - 0xdc00:02x}"
    return f"a lone surrogate \\u{ord(ch):04x}"


def text_problem(text, decoded: bool = False) -> str | None:
    """Why a text cannot be rated (None if it can): the one rule of the API, the CLI and the service.
    decoded: as unicode_problem's (a command-line argument)."""
    if text is None or (isinstance(text, float) and text != text):  # None, or pandas' NaN for a missing cell
        return "is missing"
    if not isinstance(text, str):
        return f"is not a string ({type(text).__name__})"
    if not text.strip():
        return "is empty"
    problem = unicode_problem(text, decoded)
    if problem is not None:
        return "is not valid UTF-8" if problem.startswith("undecodable") else f"holds {problem} (not valid Unicode)"
    if _reads_as_nothing(text):
        return "has no words: only markup or characters the tokenizer drops"
    return None


def _reads_as_nothing(text: str) -> bool:
    """Whether the tokenizer reads no token at all in a non-blank text (markup alone: "<br />");
    only texts that may be such are tokenized here (one with markup, or with no letter or digit)."""
    if "<" not in text and any(c.isalnum() for c in text):
        return False
    from reviewlstm.io.text import tokenize
    return not tokenize(text)


def _check_decoded(value: str, column: str | None = None) -> None:
    problem = unicode_problem(value)
    if problem:
        where = f" in column {column!r}" if column else ""
        why = "(the file must be UTF-8)" if problem.startswith("undecodable") else \
            "(not a character: the text is not valid Unicode)"
        raise ValueError(f"{problem}{where} {why}")


def header_columns(path: Path, fmt: str | None = None) -> list[str]:
    """The columns a table file declares before any row (CSV/TSV header, Parquet schema; JSONL has
    none): what a scored output keeps even when no row of it could be written. [] when unreadable."""
    import stat
    path = Path(path)
    try:
        if not stat.S_ISREG(path.stat().st_mode):  # a pipe (/dev/stdin) is read once, by the reader alone
            return []
        fmt = detect_format(path, fmt)
        if fmt == "parquet":
            import pyarrow.parquet as pq
            return list(pq.ParquetFile(path).schema_arrow.names)
        if fmt not in ("csv", "tsv"):
            return []
        with _open_text(path) as f:
            first = next(csv.reader(_lines(path, f), delimiter="\t" if fmt == "tsv" else ",",
                                    quoting=csv.QUOTE_NONE if fmt == "tsv" else csv.QUOTE_MINIMAL), [])
        return unique_names([h.strip() for h in first])
    except Exception:  # the reader itself names what is wrong with the file; this is a courtesy
        return []


def _raw_rows(path: Path, fmt: str) -> Iterator[tuple[int, dict | None, str | None]]:
    """(line, row as a dict, or None and why it could not be read) for CSV, TSV, JSONL, Parquet."""
    if fmt == "parquet":
        try:
            import pyarrow.parquet as pq
            pf = pq.ParquetFile(path)
        except ImportError:
            raise DataError(f"{path}: reading Parquet needs pyarrow: pip install pyarrow") from None
        except Exception as e:  # pyarrow raises several types for a file that is not Parquet
            raise DataError(f"{path}: not a Parquet file ({str(e).splitlines()[0]})") from None
        n = 0
        batches = pf.iter_batches(batch_size=4096)
        while True:
            try:
                batch = next(batches)
            except StopIteration:
                return
            except Exception as e:  # corrupt pages: pyarrow's message names no file
                raise DataError(f"{path}: cannot read the Parquet data after row {n} ({str(e).splitlines()[0]}): "
                                "the file is corrupt or cut short") from None
            for row in batch.to_pylist():
                n += 1
                yield n, row, None
    with _open_text(path) as f:
        if fmt == "jsonl":
            for lineno, line in enumerate(_lines(path, f), 1):
                if not line.strip():
                    continue
                try:
                    _check_decoded(line)
                    row = json.loads(line)
                except ValueError as e:
                    yield lineno, None, f"not valid JSON ({e})" if isinstance(e, json.JSONDecodeError) else str(e)
                    continue
                if not isinstance(row, dict):
                    yield lineno, None, f"expected a JSON object, got {type(row).__name__}"
                    continue
                yield lineno, row, None
            return
        delimiter = "\t" if fmt == "tsv" else ","
        # TSV is tab-separated, not CSV with tabs: a quote is text there ("Wow" is all I can say). CSV
        # is strict: a quote left open is an error at the end of the file, not a field that swallows it
        quoting = csv.QUOTE_NONE if fmt == "tsv" else csv.QUOTE_MINIMAL
        if csv.field_size_limit() < MAX_FIELD_CHARS:
            csv.field_size_limit(MAX_FIELD_CHARS)
        lines = _Tap(_lines(path, f))
        reader = csv.reader(lines, delimiter=delimiter, quoting=quoting, strict=fmt != "tsv")
        try:
            header = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            raise DataError(f"{path}:1: cannot read the header: {e}") from None
        header = unique_names([h.strip() for h in header])
        try:
            _check_decoded(",".join(header))
        except ValueError as e:
            raise DataError(f"{path}:1: {e}") from None
        while True:
            began = reader.line_num + 1  # the line this row starts on
            lines.taken.clear()
            try:
                fields = next(reader)
            except StopIteration:
                return
            except csv.Error as e:
                if "end of data" in str(e) or "field limit" in str(e) or "field larger" in str(e):
                    # nothing after an open quote can be trusted: every later row would be part of it,
                    # so the rest of the file is this one bad row (an error where bad rows are not
                    # skipped), and the row says where the quote opened
                    last = max(reader.line_num, began)
                    # the fields before the open quote (an id, say), so the output row can be joined back
                    before = next(csv.reader([lines.taken[0].split('"', 1)[0]], delimiter=delimiter), [""]) \
                        if lines.taken else [""]
                    known = dict(zip(header, before[:-1])) or None
                    yield began, known, ("a quoted field starts on this line and "
                                        + ("is never closed" if "end of data" in str(e) else
                                           f"runs past {MAX_FIELD_CHARS:,} characters") + " (a missing closing quote?)"
                                        + (f"; lines {began}-{last}, the rest of the file, are this one bad row"
                                           if last > began else ""))
                    return
                yield began, None, f"not valid {fmt.upper()} ({e})"
                continue
            if not fields:  # a blank line; a quoted empty field ("") is a row, and is checked
                continue
            row = dict(zip(header, fields))
            if len(fields) != len(header):
                # the fields the header names are kept (an id column, say), so a scored output can
                # still be joined back to this row; the row itself is an error
                yield began, row, f"ragged row: {len(fields)} fields, the header has {len(header)}"
                continue
            if reader.line_num > began:
                swallowed = _row_shaped(lines.taken, fields, delimiter)
                if swallowed:
                    yield began, row, (f"a quoted field opens on this line and takes lines {began + 1}-{reader.line_num}, "
                                       f"{len(swallowed)} of which read alone as rows of this file (line "
                                       f"{', '.join(str(began + k) for k in swallowed[:5])}"
                                       f"{', ...' if len(swallowed) > 5 else ''}): a stray quote?")
                    continue
            yield began, row, None


class _Tap:
    """The lines a csv.reader consumes, kept for the record being read (to look inside one that runs
    over several lines)."""

    def __init__(self, lines: Iterator[str]):
        self.lines, self.taken = lines, []

    def __iter__(self):
        return self

    def __next__(self) -> str:
        line = next(self.lines)
        self.taken.append(line)
        return line


def _is_int(value: str) -> bool:
    value = value.strip()
    return value.lstrip("+-").isdigit() and value.isascii()


def _row_shaped(lines: list[str], fields: list[str], delimiter: str) -> list[int]:
    """The lines wholly inside a record that runs over several lines which, read alone, look like rows
    of the file: as many fields as the record, and an integer wherever the record has one (its rating,
    an id). A review over several lines has prose there; a stray quote has swallowed rows."""
    numeric = [i for i, v in enumerate(fields) if _is_int(v)]
    if not numeric:
        return []
    found = []
    for k, line in enumerate(lines[1:-1], 1):
        alone = next(csv.reader([line], delimiter=delimiter), [])
        if len(alone) == len(fields) and all(_is_int(alone[i]) for i in numeric):
            found.append(k)
    return found


def unique_names(names: list[str]) -> list[str]:
    """Column names made unique the way pandas does (a, a.1, a.2), so no column is lost."""
    seen: dict[str, int] = {}
    out = []
    taken = set(names)
    for name in names:
        if name in seen:
            k = seen[name]
            while f"{name}.{k}" in taken:
                k += 1
            seen[name] = k + 1
            new = f"{name}.{k}"
            taken.add(new)
            out.append(new)
        else:
            seen[name] = 1
            out.append(name)
    return out


def _pick(columns: Iterable[str], wanted: str | None, candidates: tuple[str, ...], kind: str, path: Path,
          required: bool) -> str | None:
    columns = list(columns)
    if wanted is not None:
        if wanted not in columns:
            raise DataError(f"{path}: no {kind} column {wanted!r}; the columns are {', '.join(map(str, columns))}")
        return wanted
    lower = {str(c).lower(): c for c in columns}
    for c in candidates:
        if c in lower:
            return lower[c]
    if required:
        raise DataError(f"{path}: no {kind} column: expected one of {', '.join(candidates)} (or name it with "
                        f"--{kind}-column); the columns are {', '.join(map(str, columns))}")
    return None


def _read_table(path: Path, fmt: str, columns: Columns, scale: tuple[int, int], require_rating: bool,
                on_bad: OnBad, bad: BadRows, ratings: bool = True, scale_hint: bool = True,
                labels: list[str] | None = None) -> Iterator[Example]:
    text_col = rating_col = None
    resolved = False
    for line, row, problem in _raw_rows(path, fmt):
        if row is not None and problem is None and not resolved:
            # a table's header names its columns once; JSONL rows may differ, so a column named on the
            # command line is taken as given and one picked by name comes from the first row that has
            # it (a row without it is a bad row)
            keys = list(row.keys())
            if fmt == "jsonl":
                keys += [c for c in (columns.text, columns.rating) if c is not None and c not in row]
            if fmt == "jsonl" and _pick(keys, columns.text, TEXT_COLUMNS, "text", path, False) is None:
                problem = (f"no text column in this row: expected one of {', '.join(TEXT_COLUMNS)} (or name it with "
                           f"--text-column); its keys are {', '.join(map(str, row.keys())) or 'none'}")
            else:
                text_col = _pick(keys, columns.text, TEXT_COLUMNS, "text", path, True)
                rating_col = _pick(keys, columns.rating, RATING_COLUMNS, "rating", path,
                                   require_rating or columns.rating is not None) if ratings else None
                bad.columns = {"text": text_col, "rating": rating_col}
                resolved = True
        if problem is None:
            problem = _row_problem(row, text_col, rating_col, scale, require_rating, scale_hint, labels)
        if problem is not None:
            reason = problem.split(" (")[0].split(":")[0]
            msg = f"{path}:{line}: {problem}"
            if on_bad == "keep":
                bad.add(msg, reason)
                yield Example(text="", rating=None, line=line, row=row if row is not None else {}, error=problem)
                continue
            if on_bad == "raise":
                raise DataError(msg)
            bad.add(msg, reason)
            continue
        rating = _as_rating(row.get(rating_col), labels) if rating_col else None
        yield Example(text=str(row[text_col]), rating=rating, line=line, row=row)


def _row_problem(row: dict, text_col: str, rating_col: str | None, scale: tuple[int, int],
                 require_rating: bool, scale_hint: bool = True, labels: list[str] | None = None) -> str | None:
    if text_col not in row:
        return f"missing column {text_col!r}"
    text = row[text_col]
    if text is None or not isinstance(text, str) or not text.strip():
        return f"empty text in column {text_col!r}" if not text or isinstance(text, str) else \
            f"text in column {text_col!r} is a {type(text).__name__}, not a string"
    try:
        _check_decoded(text, text_col)
        for column, value in row.items():  # bytes that are not UTF-8, in any column: written back, never rewritten silently
            if column != text_col and isinstance(value, str) and not value.isascii() and _UNDECODED.search(value):
                _check_decoded(value, column)
    except ValueError as e:
        return str(e)
    if rating_col is None:
        return None
    value = row.get(rating_col)
    if value is None or (isinstance(value, str) and not value.strip()):
        return f"missing rating in column {rating_col!r}" if require_rating else None
    rating = _as_rating(value, labels)
    if labels and rating is None:
        return f"rating {value!r} in column {rating_col!r} is not one of the declared ratings {', '.join(labels)}"
    lo, hi = scale
    if rating is None or not lo <= rating <= hi:
        hint = ""
        if rating is None and isinstance(value, str) and any(ch.isalpha() for ch in value) and scale_hint:
            hint = " (ratings in words: declare their order, lowest first, with --ratings, e.g. --ratings negative,neutral,positive)"
        if rating is not None and (lo, hi) == (1, 5) and scale_hint:
            hint = " (ratings on another scale: pass --scale, e.g. --scale 1-10" + \
                   (" or --scale 0-4" if rating == 0 else "") + ")"
        elif rating is not None and not scale_hint:
            hint = " (the model rates on its own scale: a file on another scale needs a model trained on it)"
        return f"rating {value!r} in column {rating_col!r} is not an integer in {lo}..{hi}{hint}"
    return None


def _as_rating(value, labels: list[str] | None = None) -> int | None:
    if labels is not None:  # a declared word, compared without case or surrounding space: its rank, 1..K
        word = str(value).strip().lower() if value is not None else ""
        ranks = {name.lower(): k for k, name in enumerate(labels, 1)}
        return ranks.get(word)
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    text = str(value).strip()
    try:
        return int(text)
    except ValueError:
        try:
            f = float(text)
        except ValueError:
            return None
        return int(f) if f.is_integer() else None
