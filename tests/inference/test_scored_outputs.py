"""A scored file holds every row and every value of the input: the user's columns are never
overwritten, a link is written through, a Parquet output takes any mix of values (and no rows), a
CSV's numbers stay numbers, a pipe can be the input, and a directory is never the output."""
from __future__ import annotations

import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from support import run_cli
from reviewlstm import api
from reviewlstm.io.data import DataError

pytestmark = pytest.mark.usefixtures("compiled_kernel")  # runs models: the compiled loop built first


def test_the_users_columns_are_never_overwritten(tiny_model, tmp_path):
    src = tmp_path / "scored-before.csv"
    src.write_text("text,error,predicted_rating,p_1,known_share\ngood,mine,9,0.5,x\n")
    out = tmp_path / "again.csv"
    proc = run_cli("predict", "--model", tiny_model, "--input", src, "--output", out, "--no-progress")
    assert proc.returncode == 2 and "already has column(s) error, predicted_rating, p_1, known_share" in proc.stderr
    assert "Traceback" not in proc.stderr and not out.exists() and src.read_text().endswith("good,mine,9,0.5,x\n")
    late = tmp_path / "late.jsonl"
    late.write_text('{"text": "good"}\n{"text": "bad", "error": "mine"}\n')
    with pytest.raises(DataError, match=r"late.jsonl:2: the input already has column\(s\) error"):
        api.score_file(late, tmp_path / "o.jsonl", model=tiny_model, progress=False)
    assert not (tmp_path / "o.jsonl").exists()


def test_an_output_that_is_a_link_is_written_through_it(tiny_model, tmp_path):
    src = tmp_path / "in.csv"
    src.write_text("text\ngood\n")
    (tmp_path / "elsewhere").mkdir()
    target = tmp_path / "elsewhere" / "real.csv"
    target.write_text("old")
    link = tmp_path / "link.csv"
    link.symlink_to(target)
    api.score_file(src, link, model=tiny_model, progress=False)
    assert link.is_symlink() and target.read_text().startswith("text,predicted_rating")
    assert sorted(p.name for p in target.parent.iterdir()) == ["real.csv"]


def test_a_directory_as_the_output_is_refused_and_leaves_nothing(tiny_model, tmp_path):
    src = tmp_path / "in.csv"
    src.write_text("text\ngood\n")
    out = tmp_path / "out.csv"
    out.mkdir()
    with pytest.raises(DataError, match=f"{out}: is a directory"):
        api.score_file(src, out, model=tiny_model, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv", "out.csv"] and not list(out.iterdir())


def test_parquet_takes_late_errors_changing_types_nested_values_and_no_rows(tiny_model, tmp_path):
    src = tmp_path / "mixed.jsonl"
    lines = [f'{{"id": {k}, "text": "a good film {k}", "meta": {{"k": {k}}}}}' for k in range(4200)]
    lines.append('{"id": "x-4201", "text": "", "meta": "plain"}')   # an error row late, an id turned text
    lines.append('{"id": 4202, "text": "fine", "note": "x\\ud800", "meta": [1, 2]}')
    src.write_text("\n".join(lines) + "\n")
    out = tmp_path / "o.parquet"
    s = api.score_file(src, out, model=tiny_model, progress=False, chunk_size=1000)
    table = pq.read_table(out)
    assert s.rows == table.num_rows == 4202
    assert table.schema.field("id").type == pa.string() and table.column("id")[0].as_py() == "0"
    assert table.column("error")[4200].as_py().startswith("empty text") and table.column("error")[0].as_py() is None
    assert table.column("note")[4201].as_py() == "x\\ud800" and table.column("meta")[0].as_py() == '{"k": 0}'
    assert table.schema.field("predicted_rating").type == pa.int64()
    bad = tmp_path / "bad.csv"
    bad.write_text('text\n""\n""\n')
    empty = tmp_path / "none.parquet"
    s = api.score_file(bad, empty, model=tiny_model, progress=False, skip_bad_rows=True)
    table = pq.read_table(empty)
    assert s.rows == 0 and table.num_rows == 0 and "predicted_rating" in table.column_names


def test_a_csvs_numbers_are_numbers_in_parquet(tiny_model, tmp_path):
    src = tmp_path / "in.csv"
    src.write_text("id,stars,price,text\n1,5,9.5,great\n2,1,,awful\n3,4,12,fine\n")
    out = tmp_path / "o.parquet"
    api.score_file(src, out, model=tiny_model, progress=False)
    frame = pq.read_table(out).to_pandas()
    assert frame["stars"].tolist() == [5, 1, 4] and str(frame["stars"].dtype) == "int64"
    assert frame["price"].tolist()[0] == 9.5 and frame["price"].isna().tolist() == [False, True, False]
    assert (frame["stars"] == frame["predicted_rating"]).dtype == bool


def test_a_pipe_can_be_the_input(tiny_model, tmp_path):
    out = tmp_path / "o.csv"
    proc = subprocess.run([sys.executable, "-m", "reviewlstm.apps.cli", "predict", "--model", str(tiny_model), "--input",
                           "/dev/stdin", "--format", "csv", "--output", str(out), "--no-progress"],
                          input="text\ngood\nbad\n", capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert len(out.read_text().splitlines()) == 3


def test_standard_input_to_standard_output_as_a_pipe(tiny_model, tmp_path):
    """`predict --input - --output -`: CSV in on standard input, the scored rows out on standard output
    (the summary on standard error), the same rows a file output holds; a JSONL input's rows come back
    as JSONL; nothing is left behind."""
    import csv as _csv
    import io as _io
    import json as _json
    text = "id,text\n1,a gorgeous film\n2,a dull and tired film\n3,\n"
    piped = run_cli("predict", "--model", tiny_model, "--input", "-", "--output", "-", "--no-progress", input=text)
    assert piped.returncode == 0, piped.stderr
    rows = list(_csv.DictReader(_io.StringIO(piped.stdout)))
    assert [r["id"] for r in rows] == ["1", "2", "3"] and rows[0]["predicted_rating"] and rows[2]["error"]
    assert "read 3 rows from standard input" in piped.stderr and "-> standard output" in piped.stderr
    assert "standard input:4: empty text" in piped.stderr and "reviewlstm-" not in piped.stderr
    src = tmp_path / "in.csv"
    src.write_text(text)
    out = tmp_path / "out.csv"
    assert run_cli("predict", "--model", tiny_model, "--input", src, "--output", out, "--no-progress").returncode == 0
    assert out.read_text() == piped.stdout
    jsonl = tmp_path / "in.jsonl"
    jsonl.write_text('{"text": "a gorgeous film"}\n{"text": "a dull film"}\n')
    lines = run_cli("predict", "--model", tiny_model, "--input", jsonl, "--output", "-", "--no-progress").stdout
    assert [_json.loads(line)["text"] for line in lines.splitlines()] == ["a gorgeous film", "a dull film"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv", "in.jsonl", "out.csv"]
