"""What a user meets: every row back, one rule for a text in the API, the CLI and the
service, what the model could read, explanations with a bounded cost, help from the code's own
defaults, training curves beside the model."""
import csv
import json
import subprocess
import sys
from dataclasses import fields

import pytest

from support import run_cli
from reviewlstm import api

pytestmark = pytest.mark.usefixtures("compiled_kernel")  # runs models: the compiled loop built first

UNREADABLE = "これは素晴らしい映画です"  # Japanese: not one word the SST model knows


# ---------------------------------------------------------------------- what the model could read


def test_a_text_the_model_cannot_read_says_so(tiny_model):
    known = api.predict("a good film", model=tiny_model)
    assert known.known_share == 1.0 and known.warning is None
    for text, why in ((UNREADABLE, "knows 0 of this text's 1 words"), ("😀😀 !!! ...", "no words, only symbols")):
        p = api.predict(text, model=tiny_model)
        assert p.known_share == 0.0 and why in p.warning
    half = api.predict("good zzqxv", model=tiny_model)
    assert half.known_share == 0.5 and half.warning is None  # a typo is not a warning
    proc = run_cli("predict", "--model", tiny_model, UNREADABLE)
    assert proc.returncode == 0 and "warning: the model knows 0" in proc.stdout
    proc = run_cli("predict", "--model", tiny_model, "--json", UNREADABLE)
    row = json.loads(proc.stdout)
    assert row["known_share"] == 0.0 and "mostly a guess" in row["warning"]


# ---------------------------------------------------------------------- one rule for a text


def test_the_api_refuses_what_the_cli_and_service_refuse(tiny_model):
    with pytest.raises(ValueError, match="the text is empty"):
        api.predict("", model=tiny_model)
    with pytest.raises(ValueError, match="text 2 is empty"):
        api.predict(["good", "  "], model=tiny_model)
    with pytest.raises(ValueError, match=r"text 2 is not a string \(int\)"):
        api.predict(["good", 3], model=tiny_model)
    with pytest.raises(TypeError, match="got dict"):
        api.predict({"text": "good"}, model=tiny_model)
    assert run_cli("predict", "--model", tiny_model, "").stderr.strip().endswith("TEXT 1 is empty")


def test_a_dataframe_comes_back_with_every_row(tiny_model):
    import pandas as pd
    import pyarrow as pa
    frame = pd.DataFrame({"id": [7, 8, 9, 10], "Review": ["a fine film", "", None, "dull"]}, index=[3, 1, 2, 0])
    out = api.predict(frame, model=tiny_model)
    assert list(out.index) == [3, 1, 2, 0] and list(out["id"]) == [7, 8, 9, 10]
    assert list(out.columns[:2]) == ["id", "Review"]
    assert {"predicted_rating", "expected_rating", "p_1", "p_5", "known_share", "error"} <= set(out.columns)
    assert out.loc[3, "predicted_rating"] in range(1, 6) and pd.isna(out.loc[0, "error"])
    assert out.loc[1, "error"] == "text is empty" and out.loc[2, "error"] == "text is missing"
    assert pd.isna(out.loc[1, "predicted_rating"])
    alone = api.predict("a fine film", model=tiny_model)
    assert out.loc[3, "expected_rating"] == round(alone.expected_rating, 4)
    # a column: a DataFrame of the predictions on its index; pyarrow too
    series = api.predict(pd.Series(["a fine film", "dull"], index=["x", "y"]), model=tiny_model)
    assert list(series.index) == ["x", "y"] and series.loc["x", "expected_rating"] == round(alone.expected_rating, 4)
    arrow = api.predict(pa.array(["a fine film", "dull"]), model=tiny_model)
    assert list(arrow["predicted_rating"]) == list(series["predicted_rating"])
    with pytest.raises(ValueError, match="no text column 'body'"):
        api.predict(frame, model=tiny_model, text_column="body")
    with pytest.raises(ValueError, match="no text column: expected one of"):
        api.predict(pd.DataFrame({"x": ["good"]}), model=tiny_model)


def test_scoring_a_file_returns_every_row_with_an_error_column(tiny_model, tmp_path):
    src = tmp_path / "in.csv"
    src.write_text("id,text\n1,a fine film\n2,\n3,dull and long\n4,\"   \"\n5,good\n")
    out = tmp_path / "out.csv"
    proc = run_cli("predict", "--model", tiny_model, "--input", src, "--output", out, "--no-progress")
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.DictReader(out.open()))
    assert [r["id"] for r in rows] == ["1", "2", "3", "4", "5"]
    assert [bool(r["predicted_rating"]) for r in rows] == [True, False, True, False, True]
    assert rows[1]["error"] == "empty text in column 'text'" and rows[0]["error"] == ""
    assert "2 row(s) could not be rated" in proc.stderr and "in.csv:3" in proc.stderr and "in.csv:5" in proc.stderr
    assert "read 5 rows" in proc.stdout and "rated 3 in" in proc.stdout
    # --skip-bad-rows leaves them out, and names every one (the first ten, then a count)
    many = tmp_path / "many.csv"
    many.write_text("text\n" + "".join("good\n\"\"\n" for _ in range(12)))
    proc = run_cli("predict", "--model", tiny_model, "--input", many, "--output", tmp_path / "o.jsonl",
                   "--skip-bad-rows", "--no-progress")
    assert proc.returncode == 0 and len((tmp_path / "o.jsonl").read_text().splitlines()) == 12
    assert "skipped 12 bad row(s)" in proc.stderr and "many.csv:3" in proc.stderr and "and 2 more" in proc.stderr
    # training stays strict
    rated = tmp_path / "rated.csv"
    rated.write_text("text,rating\na fine film,4\n,2\n")
    proc = run_cli("train", "--train", rated, "--out", tmp_path / "m", "--epochs", 1, "--hidden", 4)
    assert proc.returncode == 2 and "rated.csv:3: empty text" in proc.stderr


def test_a_parquet_output_keeps_its_error_column_typed(tiny_model, tmp_path):
    import pyarrow.parquet as pq
    src = tmp_path / "in.jsonl"
    src.write_text('{"text": "good"}\n{"text": ""}\nnot json\n{"text": "bad"}\n')
    out = tmp_path / "out.parquet"
    proc = run_cli("predict", "--model", tiny_model, "--input", src, "--output", out, "--no-progress")
    assert proc.returncode == 0, proc.stderr
    table = pq.read_table(out).to_pylist()
    assert len(table) == 4 and table[2]["error"].startswith("not valid JSON") and table[3]["predicted_rating"]


# ---------------------------------------------------------------------- the command line


def test_a_closed_pipe_is_not_an_error(tiny_model, sst):
    proc = subprocess.run(f"{sys.executable} -m reviewlstm.apps.cli evaluate --model {tiny_model} {sst / 'dev.txt'} | head -1",
                          shell=True, capture_output=True, text=True, timeout=300)
    assert proc.stdout.count("\n") == 1 and "Broken pipe" not in proc.stderr and "Traceback" not in proc.stderr


def test_texts_on_standard_input(tiny_model):
    proc = run_cli("predict", "--model", tiny_model, "--json", input="a fine film\ndull\n")
    assert proc.returncode == 0 and [json.loads(l)["text"] for l in proc.stdout.splitlines()] == ["a fine film", "dull"]
    proc = run_cli("predict", "--model", tiny_model, input="")
    assert proc.returncode == 2 and "standard input holds no text" in proc.stderr
    proc = run_cli("predict", "--model", tiny_model, input="good\n\nbad\n")  # a blank line separates, it is skipped
    assert proc.returncode == 0 and "skipped 1 blank line(s)" in proc.stderr and len(proc.stdout.splitlines()) == 2
    assert "standard input" in run_cli("predict", "--help").stdout


def test_train_never_overwrites_a_model_unasked(sst, tmp_path):
    out = tmp_path / "m"
    args = ("train", "--train", sst / "train.txt", "--out", out, "--no-phrases", "--max-examples", 60, "--hidden", 4,
            "--epochs", 1, "--no-progress", "--embeddings", "random")
    assert run_cli(*args).returncode == 0
    before = (out / "model.safetensors").read_bytes()
    proc = run_cli(*args, "--seed", 5)
    assert proc.returncode == 2 and "a model is already there: pass --overwrite" in proc.stderr
    assert (out / "model.safetensors").read_bytes() == before
    assert run_cli(*args, "--seed", 5, "--overwrite").returncode == 0
    assert (out / "model.safetensors").read_bytes() != before


def test_download_without_a_network_is_one_line(tmp_path):
    proc = run_cli("download-sst5", "--cache", tmp_path, "--url", "http://127.0.0.1:9/trainDevTestTrees_PTB.zip")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and "<urlopen" not in proc.stderr
    line = proc.stderr.strip()
    assert "\n" not in line and "cannot download" in line and str(tmp_path / "trainDevTestTrees_PTB.zip") in line
    assert not list(tmp_path.glob("*.part"))


def test_a_ten_point_file_suggests_its_scale(tmp_path):
    src = tmp_path / "ten.csv"
    src.write_text("text,rating\ngood,4\ngreat,9\n")
    proc = run_cli("train", "--train", src, "--out", tmp_path / "m")
    assert proc.returncode == 2 and "ten.csv:3: rating '9'" in proc.stderr and "--scale 1-10" in proc.stderr


def test_a_model_that_rates_everything_alike_warns(tmp_path):
    # sorted by rating, most of it 3s: the model learns to say 3
    src, dev = tmp_path / "sorted.csv", tmp_path / "dev.csv"
    src.write_text("text,rating\n" + "".join(f"plain words number {i},3\n" for i in range(80))
                   + "".join(f"it was awful {i},1\n" for i in range(4)))
    dev.write_text("text,rating\n" + "".join(f"so good {i},5\n" for i in range(15)) + "".join(f"meh {i},3\n" for i in range(10)))
    proc = run_cli("train", "--train", src, "--dev", dev, "--out", tmp_path / "m", "--epochs", 4, "--hidden", 4,
                   "--no-progress", "--embeddings", "random", "--holdout", 0, "--lr", 0.02, "--patience", 10,
                   "--event-dropout", 0.3)
    assert proc.returncode == 0, proc.stderr
    assert "warning: the kept model rates 100% of the dev reviews 3 stars, which are 40% of them" in proc.stderr
    assert "**Warning:** " in (tmp_path / "m" / "MODEL_CARD.md").read_text()  # in the card's first lines


def test_every_flag_has_help_and_train_defaults_come_from_the_config():
    from reviewlstm.apps.cli import _default_text, build_parser
    from reviewlstm.distillation.distill import DistillConfig
    from reviewlstm.apps.service import Limits
    from reviewlstm.training.config import TrainConfig
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name, cmd in sub.choices.items():
        for action in cmd._actions:
            if action.dest != "help":
                assert action.help, f"reviewlstm {name} {action.option_strings or action.dest}: no help"
    train_help = sub.choices["train"].format_help().replace("\n", " ")
    assert "dev checks per epoch (default 4)" in " ".join(train_help.split())
    # every setting with a flag has it, with the dataclass's default in its help (nothing restated)
    for command, cls, prefix in (("train", TrainConfig, "cfg_"), ("distill", TrainConfig, "cfg_"),
                                 ("distill", DistillConfig, "distill_")):
        actions = {a.dest: a for a in sub.choices[command]._actions}
        for f in fields(cls):
            if not f.metadata["cli"] or f.metadata["only"] not in (None, command):
                assert prefix + f.name not in actions, (command, f.name)
                continue
            action = actions[prefix + f.name]
            if f.metadata["show_default"]:
                assert action.help.endswith(f"(default {_default_text(f.default)})"), (command, f.name)
    serve = {a.dest: a for a in sub.choices["serve"]._actions}
    for f in fields(Limits):
        assert serve[f.name].default == f.default and f"{f.default:,}" in serve[f.name].help


# ---------------------------------------------------------------------- explanations


def test_explanation_cost_is_bounded_and_said(tiny_model, tmp_path):
    long = "a fine film , but far too long . " * 400  # 13,200 characters
    e = api.explain(long, model=tiny_model, max_chars=1000)
    assert e.text_chars == len(long) and e.explained_chars <= 1000 and long.startswith(e.text)
    assert long[len(e.text)] == " "  # cut at a word's end
    whole = api.explain("a fine film , but far too long .", model=tiny_model)
    assert whole.explained_chars == whole.text_chars
    with pytest.raises(ValueError, match="the text is empty"):
        api.explain(" ", model=tiny_model)
    proc = run_cli("explain", "--model", tiny_model, long, "--max-chars", 2000, "--html", tmp_path / "e.html")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[1].startswith("note: the text has 13,200 characters; the first 1,99") and "--max-chars" in lines[1]
    assert lines[2].startswith("pushed up:") and lines[3].startswith("pushed down:")  # the top words first
    assert "(+0." not in proc.stdout  # no thousands of words: --json / --html hold them
    rated = api.predict(long, model=tiny_model)
    assert lines[0].split()[1] == str(rated.rating)  # the rating shown is the whole text's
    page = (tmp_path / "e.html").read_text()
    assert "REVIEWLSTM_PREDICTION = {" in page


def test_gate_traces_are_labelled_as_the_seed_names_them(tiny_model):
    e = api.explain("a fine film", model=tiny_model)
    assert e.gate_labels["learn"].startswith("learn gate") and e.gate_labels["use"].startswith("use gate")
    assert set(e.gate_labels) == {"learn", "forget", "forget_gate", "remember", "use"}


# ---------------------------------------------------------------------- training as a picture


def test_training_leaves_its_curves_beside_the_model(sst, tmp_path):
    out = tmp_path / "m"
    proc = run_cli("train", "--train", sst / "train.txt", "--dev", sst / "dev.txt", "--out", out, "--no-phrases",
                   "--max-examples", 200, "--hidden", 8, "--epochs", 2, "--no-progress")
    assert proc.returncode == 0, proc.stderr
    curves = json.loads((out / "curves.json").read_text())
    meta = json.loads((out / "metadata.json").read_text())
    assert curves["history"] == meta["history"] and len(curves["history"]) >= 4 and curves["kept_epoch"] == meta["best_epoch"]
    assert {"epoch", "train_loss", "dev_accuracy", "dev_mae", "dev_nll"} <= set(curves["history"][0])
    assert curves["holdout"]["accuracy"] == meta["holdout_metrics"]["accuracy"]
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "![training curves](curves.png)" in (out / "MODEL_CARD.md").read_text()
    assert meta["seconds"] >= meta["seconds_to_best"] and meta["threads"] >= 1
    assert api.load_model(out).config.hidden == 8  # the extra files do not disturb loading


def test_an_empty_table_comes_back_empty_with_the_prediction_columns_and_coverage_is_a_number(tiny_model):
    import pandas as pd
    from reviewlstm import api
    out = api.predict(pd.DataFrame({"text": []}), model=tiny_model)
    assert len(out) == 0 and {"text", "predicted_rating", "expected_rating", "p_1", "p_5", "error"} <= set(out.columns)
    for coverage in ("0.9", True, [0.9]):
        with pytest.raises(ValueError, match="coverage must be a number between 0 and 1"):
            api.predict("a fine film", model=tiny_model, coverage=coverage)
