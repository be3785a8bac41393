"""Reading a user's file loses nothing and merges nothing: a stray quote is reported where it opened,
TSV quotes are text, long fields and deep trees are rows (good or bad) rather than the end of the
file, columns are found in any row, and every value keeps its bytes or its row says why not."""
from __future__ import annotations

import gzip
import json
import subprocess
import sys

import pytest

from support import run_cli
from reviewlstm import api
from reviewlstm.io.data import BadRows, Columns, DataError, read_examples

pytestmark = pytest.mark.usefixtures("compiled_kernel")  # runs models: the compiled loop built first

STRAY = 'text,rating\n"Unterminated opening quote review,5\ngood one,4\nbad one,1\nmy 9",4\nnext,3\n'


def test_a_stray_quote_that_swallows_rows_is_reported_not_merged(tiny_model, tmp_path):
    src = tmp_path / "stray.csv"
    src.write_text(STRAY)
    with pytest.raises(DataError) as e:
        list(read_examples(src))
    assert str(e.value).startswith(f"{src}:2: a quoted field opens on this line and takes lines 3-5")
    assert "line 3, 4" in str(e.value) and "stray quote" in str(e.value)
    with pytest.raises(DataError, match=f"{src}:2: a quoted field opens"):
        api.evaluate(src, model=tiny_model)
    out = tmp_path / "scored.csv"
    proc = run_cli("predict", "--model", tiny_model, "--input", src, "--output", out, "--no-progress")
    assert proc.returncode == 0, proc.stderr
    import csv
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 2 and "takes lines 3-5" in rows[0]["error"] and rows[0]["predicted_rating"] == ""
    assert rows[1]["text"] == "next" and rows[1]["error"] == ""
    # a review that really runs over several lines is one row, as before
    ok = tmp_path / "multi.csv"
    ok.write_text('text,rating\n"Great product.\nWould buy again, definitely.\nFive stars",5\nfine,4\n')
    got = list(read_examples(ok))
    assert [e.rating for e in got] == [5, 4] and got[0].text.count("\n") == 2


def test_tsv_quotes_are_text_and_a_bad_row_keeps_its_fields(tiny_model, tmp_path):
    src = tmp_path / "q.tsv"
    src.write_text('id\ttext\trating\n1\t"Wow" is all I can say\t5\n2\t"Meh."\t3\n3\tmy 9" screen, "bad\t1\n4\tragged\n')
    with pytest.raises(DataError, match=r"q.tsv:5: ragged row"):
        list(read_examples(src))
    got = list(read_examples(src, on_bad="skip"))
    assert [e.text for e in got] == ['"Wow" is all I can say', '"Meh."', 'my 9" screen, "bad']
    out = tmp_path / "scored.tsv"
    api.score_file(src, out, model=tiny_model, progress=False)
    lines = out.read_text().splitlines()
    assert lines[2].split("\t")[:2] == ["2", '"Meh."'] and lines[1].split("\t")[1] == '"Wow" is all I can say'
    assert lines[4].split("\t")[0] == "4" and "ragged row" in lines[4]  # the bad row keeps its id


def test_a_long_quoted_field_is_a_row_not_the_end_of_the_file(tmp_path):
    src = tmp_path / "long.csv"
    long_text = "word " * 34_000  # 170k characters, past csv's default field limit
    many_lines = "\n".join(f"line {k} of a long review" for k in range(1500))
    src.write_text(f'text,rating\n"{long_text}",4\n"{many_lines}",2\nshort,3\n')
    got = list(read_examples(src))
    assert [e.rating for e in got] == [4, 2, 3] and len(got[0].text) == len(long_text)


def test_a_deep_sst_tree_is_a_bad_row_naming_its_line(tiny_model, tmp_path):
    src = tmp_path / "deep.txt"
    src.write_text("(3 (2 good) (3 movie))\n" + "(2 " * 3000 + "(2 x)" + ")" * 3000 + "\n(1 (1 bad))\n")
    with pytest.raises(DataError, match=r"deep.txt:2: not an SST tree: the tree is nested too deep"):
        list(read_examples(src))
    out = tmp_path / "scored.csv"
    s = api.score_file(src, out, model=tiny_model, progress=False)
    assert s.errors == 1 and "deep.txt:2" in s.bad_rows.first[0]
    assert len(out.read_text().splitlines()) == 4


def test_a_jsonl_column_is_found_in_any_row(tiny_model, tmp_path):
    src = tmp_path / "mixed.jsonl"
    src.write_text('{"id": 1, "title": "no text here"}\n{"id": 2, "text": "a fine film", "rating": 4}\n'
                   '{"id": 3, "text": "dull", "rating": 1}\n')
    with pytest.raises(DataError, match=r"mixed.jsonl:1: missing column 'text'"):
        list(read_examples(src, columns=Columns(text="text"), ratings=False, require_rating=False))
    bad = BadRows()
    got = list(read_examples(src, on_bad="skip", bad=bad, ratings=False, require_rating=False))
    assert [e.row["id"] for e in got] == [2, 3] and bad.count == 1 and "mixed.jsonl:1: no text column" in bad.first[0]
    api.score_file(src, tmp_path / "o.jsonl", model=tiny_model, columns=Columns(text="text"), skip_bad_rows=True,
                   progress=False)
    assert [json.loads(x)["id"] for x in (tmp_path / "o.jsonl").read_text().splitlines()] == [2, 3]


def test_bytes_that_are_not_utf8_in_any_column_flag_the_row_and_are_written_back(tiny_model, tmp_path):
    src = tmp_path / "names.csv"
    src.write_bytes(b"author,text\nM\xfcller,a fine film\nAnna,dull\n")
    out = tmp_path / "scored.csv"
    assert api.score_file(src, out, model=tiny_model, progress=False).errors == 1
    raw = out.read_bytes()
    assert b"M\xfcller," in raw and b"udcfc" not in raw  # the user's bytes, as they were
    assert b"undecodable byte 0xfc in column 'author'" in raw
    with pytest.raises(DataError, match=r"names.csv:2: undecodable byte 0xfc in column 'author'"):
        list(read_examples(src, ratings=False, require_rating=False))


def test_standard_input_skips_blank_lines_and_says_so(tiny_model):
    proc = run_cli("predict", "--model", tiny_model, "--json", input="good\n\nbad\n\n")
    assert proc.returncode == 0, proc.stderr
    out = [json.loads(x) for x in proc.stdout.splitlines()]
    assert [(o["text"], o["line"]) for o in out] == [("good", 1), ("bad", 3)]
    assert "skipped 2 blank line(s) of standard input (line 2, 4)" in proc.stderr
    bad = subprocess.run([sys.executable, "-m", "reviewlstm.apps.cli", "predict", "--model", str(tiny_model), "--json",
                          "--skip-bad-rows"], input=b"good\nb\xffd\nfine\n", capture_output=True)
    assert bad.returncode == 0 and b"line 2 is not valid UTF-8" in bad.stderr
    assert [json.loads(x)["line"] for x in bad.stdout.splitlines()] == [1, 3]


def test_an_upper_case_gz_is_read_and_written_compressed(tiny_model, tmp_path):
    src = tmp_path / "IN.CSV.GZ"
    src.write_bytes(gzip.compress(b"text\na fine film\n"))
    assert [e.text for e in read_examples(src, ratings=False, require_rating=False)] == ["a fine film"]
    out = tmp_path / "OUT.CSV.GZ"
    api.score_file(src, out, model=tiny_model, progress=False)
    assert gzip.decompress(out.read_bytes()).startswith(b"text,predicted_rating")


def test_amazon_and_yelp_export_columns_are_found_and_train_says_which(tmp_path):
    """reviewText / overall (Amazon's export) and sentiment are found without naming them; train's
    log names the columns it took."""
    from reviewlstm.training.config import TrainConfig
    from reviewlstm.training.train import train
    path = tmp_path / "amazon.jsonl"
    rows = [{"reviewerID": f"r{i}", "summary": "title", "reviewText": f"good {i} strings, great sound",
             "overall": 5 if i % 3 else 2} for i in range(60)]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    bad = BadRows()
    examples = list(read_examples(path, require_rating=True, bad=bad))
    assert [e.rating for e in examples[:3]] == [2, 5, 5] and examples[1].text == "good 1 strings, great sound"
    assert bad.columns_taken() == 'text column "reviewText", rating column "overall"'
    csv_path = tmp_path / "sentiment.csv"
    csv_path.write_text("comment,sentiment\na fine film,4\na poor film,1\n")
    assert [(e.text, e.rating) for e in read_examples(csv_path, require_rating=True)] == [("a fine film", 4),
                                                                                           ("a poor film", 1)]
    logs: list[str] = []
    train(TrainConfig(train=str(path), out=str(tmp_path / "m"), epochs=1, progress=False, embeddings="random",
                      embed_dim=8, hidden=8, holdout=0), log=logs.append)
    assert any('(text column "reviewText", rating column "overall")' in line for line in logs), logs[:3]
