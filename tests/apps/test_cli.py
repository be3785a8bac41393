"""train / evaluate / predict end to end through the command line, on real SST-5 files."""
import csv
import json

import pytest
import torch

from support import run_cli
from reviewlstm import api
from reviewlstm.training.config import TrainConfig
from reviewlstm.training.train import train

pytestmark = pytest.mark.usefixtures("compiled_kernel")  # runs models: the compiled loop built first


def test_trained_model_directory(tiny_model):
    names = {p.name for p in tiny_model.iterdir()}
    assert {"model.safetensors", "config.json", "vocab.json", "metadata.json", "MODEL_CARD.md"} <= names
    meta = json.loads((tiny_model / "metadata.json").read_text())
    # a tenth of the 400 set aside by hash as the validation slice, scored once at the end
    held = meta["holdout_data"]["examples"]
    assert 20 <= held <= 60 and meta["train_data"]["examples"] == 400 - held
    assert len(meta["train_data"]["sha256"]) == 64
    assert 0 < meta["dev_metrics"]["accuracy"] <= 1 and meta["holdout_metrics"]["n"] == held
    assert meta["majority_rating"] in range(1, 6) and "accuracy" in meta["dev_majority_metrics"]
    card = (tiny_model / "MODEL_CARD.md").read_text()
    assert "validation slice, untouched" in card and f"{held} training reviews set aside" in card
    epochs = [h["epoch"] for h in meta["history"]]  # dev 4x an epoch (at whole batches)
    assert len(epochs) == 8 and epochs[3] == 1 and epochs[-1] == 2 and epochs == sorted(epochs)
    assert all("dev_accuracy" in h for h in meta["history"])
    assert meta["embedding_coverage"]["covered"] > 0
    config = json.loads((tiny_model / "config.json").read_text())
    assert config["model"]["hidden"] == 16 and config["train"]["seed"] == 1


def test_same_seed_same_model(sst, tmp_path):
    kw = dict(train=str(sst / "train.txt"), max_examples=150, phrases=False, epochs=1, hidden=8,
              embeddings="random", progress=False)
    a = train(TrainConfig(out=str(tmp_path / "a"), seed=3, **kw), log=lambda s: None)
    b = train(TrainConfig(out=str(tmp_path / "b"), seed=3, **kw), log=lambda s: None)
    assert (a.out / "model.safetensors").read_bytes() == (b.out / "model.safetensors").read_bytes()
    c = train(TrainConfig(out=str(tmp_path / "c"), seed=4, **kw), log=lambda s: None)
    assert (a.out / "model.safetensors").read_bytes() != (c.out / "model.safetensors").read_bytes()


def test_resume_continues_where_training_stopped(sst, tmp_path):
    args = ["train", "--train", sst / "train.txt", "--out", tmp_path / "m", "--max-examples", 150, "--no-phrases",
            "--hidden", 8, "--embeddings", "random", "--no-progress", "--seed", 2]
    straight = run_cli(*args[:4], tmp_path / "straight", *args[5:], "--epochs", 2)
    assert straight.returncode == 0, straight.stderr
    first = run_cli(*args, "--epochs", 1)
    assert first.returncode == 0, first.stderr
    before = json.loads((tmp_path / "m.work" / "checkpoint" / "state.json").read_text())["seconds"]
    assert not (tmp_path / "m" / "checkpoint").exists()  # the model directory holds the model
    second = run_cli(*args, "--epochs", 2, "--resume")
    assert second.returncode == 0, second.stderr
    assert "resuming after epoch 1" in second.stderr
    meta = json.loads((tmp_path / "m" / "metadata.json").read_text())
    assert meta["seconds"] > before > 0  # the whole training's seconds, the first run's included
    history = meta["history"]
    assert [h["epoch"] for h in history] == [1, 2]  # no dev set: once an epoch
    # resuming gives the very model that training straight through gives
    assert (tmp_path / "m" / "model.safetensors").read_bytes() == \
        (tmp_path / "straight" / "model.safetensors").read_bytes()


def test_train_from_a_toml_config_and_a_csv_on_a_ten_star_scale(tmp_path):
    data = tmp_path / "reviews.csv"
    rows = [("loved every minute", 10), ("utterly boring", 2), ("fine, nothing special", 6)] * 20
    with open(data, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["review", "stars"])
        w.writerows(rows)
    cfg = tmp_path / "train.toml"
    cfg.write_text(f'train = "{data}"\nout = "{tmp_path / "m"}"\nscale_min = 1\nscale_max = 10\n'
                   'hidden = 8\nepochs = 2\nembeddings = "random"\nprogress = false\nlr = 0.01\n')
    proc = run_cli("train", "--config", cfg, "--epochs", 3)
    assert proc.returncode == 0, proc.stderr
    loaded = api.load_model(tmp_path / "m")
    assert loaded.config.ratings == list(range(1, 11)) and loaded.train_config["epochs"] == 3
    p = api.predict("loved every minute", model=loaded)
    assert len(p.probabilities) == 10


def test_evaluate_json_and_confusion_png(tiny_model, sst, tmp_path):
    png = tmp_path / "confusion.png"
    proc = run_cli("evaluate", "--model", tiny_model, sst / "dev.txt", "--json", "--confusion-png", png)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["n"] == 220
    for key in ("accuracy", "macro_f1", "mae", "within_one", "qwk"):
        assert isinstance(result[key], float)
    assert sum(map(sum, result["confusion"])) == 220
    assert png.read_bytes()[:4] == b"\x89PNG"
    table = run_cli("evaluate", "--model", tiny_model, sst / "dev.txt")
    assert "accuracy" in table.stdout and "confusion" in table.stdout


def test_predict_json_and_same_answer_alone_or_in_a_batch(tiny_model):
    text = "a gorgeous , witty , seductive movie ."
    alone = run_cli("predict", "--model", tiny_model, text, "--json")
    assert alone.returncode == 0, alone.stderr
    one = json.loads(alone.stdout)
    assert isinstance(one["rating"], int) and 1 <= one["rating"] <= 5
    assert [o["rating"] for o in one["probabilities"]] == [1, 2, 3, 4, 5]  # keyed by rating
    assert abs(sum(o["probability"] for o in one["probabilities"]) - 1) < 1e-6
    assert isinstance(one["expected_rating"], float)
    batch = run_cli("predict", "--model", tiny_model, "dull and lifeless", text, "an instant classic", "--json")
    mine = [json.loads(line) for line in batch.stdout.splitlines()][1]
    assert mine["rating"] == one["rating"]
    assert max(abs(a["probability"] - b["probability"]) for a, b in zip(mine["probabilities"], one["probabilities"])) < 1e-6
    human = run_cli("predict", "--model", tiny_model, text)
    assert "expected" in human.stdout and "★" in human.stdout


@pytest.mark.parametrize("ext", ["csv", "jsonl", "parquet"])
def test_predict_scores_a_whole_file(tiny_model, tmp_path, ext):
    src = tmp_path / "in.csv"
    src.write_text("id,review\n" + "".join(f'{i},"review number {i} , quite good ."\n' for i in range(300)))
    out = tmp_path / f"out.{ext}"
    proc = run_cli("predict", "--model", tiny_model, "--input", src, "--output", out, "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert "read 300 rows" in proc.stdout and "rated 300 in" in proc.stdout
    if ext == "csv":
        rows = list(csv.DictReader(open(out)))
    elif ext == "jsonl":
        rows = [json.loads(line) for line in open(out)]
    else:
        import pyarrow.parquet as pq
        rows = pq.read_table(out).to_pylist()
    assert len(rows) == 300 and [str(r["id"]) for r in rows] == [str(i) for i in range(300)]
    assert {"review", "predicted_rating", "expected_rating", "p_1", "p_5"} <= set(rows[0])


def test_file_scoring_in_worker_processes_matches_one_process(tiny_model, tmp_path):
    """--workers 2: chunks go to two processes; every row comes back, in order, with the same numbers."""
    src = tmp_path / "in.csv"
    words = ["good", "bad", "dull", "a", "movie", "witty", "long", "."]
    src.write_text("id,review\n" + "".join(f'{i},"{" ".join(words[(i * k) % 8] for k in range(1, 3 + i % 9))}"\n'
                                           for i in range(2500)))
    from reviewlstm import api
    outs = {}
    for w in (0, 2):  # chunks of 300 rows: the workers take turns and results must come back in order
        outs[str(w)] = tmp_path / f"out{w}.csv"
        summary = api.score_file(src, outs[str(w)], model=tiny_model, progress=False, workers=w, chunk_size=300)
        assert summary.rows == 2500
    proc = run_cli("predict", "--model", tiny_model, "--input", src, "--output", tmp_path / "cli.csv", "--no-progress",
                   "--workers", "2")
    assert proc.returncode == 0 and "rated 2500 in" in proc.stdout, proc.stderr
    one, two = list(csv.DictReader(open(outs["0"]))), list(csv.DictReader(open(outs["2"])))
    assert len(two) == 2500 and [r["id"] for r in two] == [str(i) for i in range(2500)]
    assert one == two


@pytest.mark.parametrize("args,message", [
    (["evaluate", "{model}", "nope.csv"], "nope.csv: no such file"),
    (["predict", "--model", "{tmp}", "hello"], "not a reviewlstm model: missing"),
    (["predict", "--model", "{model}", ""], "TEXT 1 is empty"),
    (["predict", "--model", "{model}", "--input", "{tmp}/missing.csv", "--output", "{tmp}/o.csv"], "missing.csv: no such file"),
    (["train", "--train", "{bad}", "--out", "{tmp}/m", "--embeddings", "random"], "bad.csv:3: empty text"),
    (["train", "--train", "{bad}", "--out", "{tmp}/m", "--config", "{tmp}/missing.toml"], "missing.toml: cannot read"),
])
def test_bad_input_is_one_line_and_exit_2(tiny_model, tmp_path, args, message):
    bad = tmp_path / "bad.csv"
    bad.write_text("text,rating\ngood,4\n,3\n")
    args = [a.format(model=tiny_model, tmp=tmp_path, bad=bad) for a in args]
    if args[0] == "evaluate":
        args = ["evaluate", "--model", args[1], args[2]]
    proc = run_cli(*args)
    assert proc.returncode == 2
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_a_file_that_breaks_midway_leaves_no_half_written_output(tiny_model, tmp_path):
    import gzip
    whole = gzip.compress(("text\n" + "a fine film\n" * 20000).encode())
    src = tmp_path / "in.csv.gz"
    src.write_bytes(whole[:len(whole) * 2 // 3])  # cut short: the reader fails after thousands of rows
    out = tmp_path / "out.csv"
    proc = run_cli("predict", "--model", tiny_model, "--input", src, "--output", out, "--no-progress")
    assert proc.returncode == 2 and "in.csv.gz" in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == [src]


def test_skip_bad_rows_reports_the_count(tiny_model, tmp_path):
    src = tmp_path / "in.csv"
    src.write_text("text\ngood\n\"\"\nfine\n")
    out = tmp_path / "out.csv"
    proc = run_cli("predict", "--model", tiny_model, "--input", src, "--output", out, "--skip-bad-rows", "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert "read 3 rows" in proc.stdout and "rated 2 in" in proc.stdout and "skipped 1 bad row" in proc.stderr


def test_config_files_yaml_and_errors(tmp_path):
    y = tmp_path / "c.yaml"
    y.write_text("train: data.csv\nhidden: 32\nbidirectional: false\nevals-per-epoch: 2\n")
    cfg = TrainConfig.from_file(y, epochs=2)
    assert (cfg.train, cfg.hidden, cfg.bidirectional, cfg.evals_per_epoch, cfg.epochs) == ("data.csv", 32, False, 2, 2)
    bad = tmp_path / "c.toml"
    bad.write_text("hiden = 3\n")
    with pytest.raises(ValueError, match="c.toml: unknown setting"):
        TrainConfig.from_file(bad)
    bad.write_text("hidden = = 3\n")
    with pytest.raises(ValueError, match="c.toml: not valid TOML"):
        TrainConfig.from_file(bad)
    (tmp_path / "c.ini").write_text("[x]\n")
    with pytest.raises(ValueError, match="must be .toml, .yaml or .yml"):
        TrainConfig.from_file(tmp_path / "c.ini")


def test_threads_and_device_on_the_commands_that_run_a_model(tiny_model, tmp_path):
    """predict, evaluate, explain and serve take --threads (the same answer on one thread); predict,
    evaluate and serve take --device (auto is CPU here; CUDA on a machine without it is one line)."""
    text = "a gorgeous , witty , seductive movie ."
    base = json.loads(run_cli("predict", "--model", tiny_model, text, "--json").stdout)
    one = run_cli("predict", "--model", tiny_model, text, "--json", "--threads", "1", "--device", "auto")
    assert one.returncode == 0, one.stderr
    assert json.loads(one.stdout)["probabilities"] == base["probabilities"]
    rated = tmp_path / "rated.csv"
    rated.write_text("text,rating\ngood fun,5\na dull mess,1\n")
    ev = run_cli("evaluate", rated, "--model", tiny_model, "--threads", "1", "--json")
    assert ev.returncode == 0 and json.loads(ev.stdout)["n"] == 2, ev.stderr
    ex = run_cli("explain", "--model", tiny_model, text, "--threads", "1", "--json")
    assert ex.returncode == 0 and json.loads(ex.stdout)["rating"] == base["rating"], ex.stderr
    if not torch.cuda.is_available():
        gpu = run_cli("predict", "--model", tiny_model, text, "--device", "cuda")
        assert gpu.returncode == 2 and "sees no CUDA GPU" in gpu.stderr and "Traceback" not in gpu.stderr
    bad = run_cli("predict", "--model", tiny_model, text, "--threads", "0")
    assert bad.returncode == 2 and "--threads" in bad.stderr


def test_explain_lists_each_word_once_and_never_a_zero():
    """The words that moved the rating: one line each way, a repeated word once with its occurrences
    summed and counted, a contribution that rounds to 0.00 left out (it moved nothing)."""
    from reviewlstm.apps.cli import _moved
    tokens = ["good", "good", "good", "loud", ".", "bad"]
    contributions = [0.1, 0.2, 0.001, -0.001, 0.0, -0.3]
    assert _moved(tokens, contributions, +1) == "good ×3 +0.30"
    assert _moved(tokens, contributions, -1) == "bad -0.30"
    assert _moved(["loud"], [-0.004], -1) == "none"
