"""A model directory is the model's alone: a save never moves or deletes what it did not write, one
run writes it at a time, and a loaded model's sizes and checksums are checked before anything is
allocated or trusted."""
from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from support import run_cli
from reviewlstm import api, artifact

pytestmark = pytest.mark.usefixtures("compiled_kernel")  # runs models: the compiled loop built first


def small_train(sst, out, *extra):
    return ("train", "--train", sst / "train.txt", "--dev", sst / "dev.txt", "--out", out, "--no-phrases",
            "--max-examples", 120, "--hidden", 8, "--epochs", 1, "--no-progress", *extra)


def test_an_out_holding_the_users_files_is_refused_and_nothing_is_touched(sst, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    for k in range(30):
        (home / f"notes-{k}.txt").write_text(f"the user's note {k}")
    (home / "photos").mkdir()
    (home / "photos" / "a.jpg").write_bytes(b"\xff\xd8 not ours")
    before = sorted(p.relative_to(home).as_posix() for p in home.rglob("*"))
    proc = subprocess.run([sys.executable, "-m", "reviewlstm.cli", *map(str, small_train(sst, "."))], cwd=home,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 2, proc.stderr
    assert "not a model's" in proc.stderr and "notes-0.txt" in proc.stderr and "Traceback" not in proc.stderr
    assert sorted(p.relative_to(home).as_posix() for p in home.rglob("*")) == before
    assert all((home / f"notes-{k}.txt").read_text() == f"the user's note {k}" for k in range(30))
    assert not list(tmp_path.glob(".home.*"))  # nothing written beside it either


def test_a_save_that_fails_puts_back_what_it_moved(tiny_model, tmp_path, monkeypatch):
    out = tmp_path / "m"
    shutil.copytree(tiny_model, out)
    (out / "checkpoint").mkdir(exist_ok=True)
    (out / "checkpoint" / "state.json").write_text("{}")
    loaded = api.load_model(out)
    files_before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    real_rename = Path.rename

    def failing_swap(self, target):  # the moment between moving the checkpoint and swapping the model in
        if self == out:
            raise OSError(5, "Input/output error")
        return real_rename(self, target)

    monkeypatch.setattr(Path, "rename", failing_swap)
    with pytest.raises(OSError):
        artifact.save(out, loaded.model, loaded.vocab, loaded.train_config, loaded.metadata)
    monkeypatch.undo()
    assert (out / "checkpoint" / "state.json").read_text() == "{}"
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == files_before
    assert not list(tmp_path.glob(".m.*"))
    # and a directory holding a file that is not a model's is refused before anything moves
    (out / "notes.txt").write_text("mine")
    with pytest.raises(artifact.ArtifactError, match="notes.txt"):
        artifact.save(out, loaded.model, loaded.vocab, loaded.train_config, loaded.metadata)
    assert (out / "notes.txt").read_text() == "mine" and (out / "checkpoint").is_dir()


def test_a_second_training_into_the_same_out_fails_at_once(sst, tmp_path):
    out = tmp_path / "m"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from reviewlstm import artifact\n"
                               f"with artifact.OutputLock({str(out)!r}):\n    print('held', flush=True); time.sleep(600)"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        proc = run_cli(*small_train(sst, out, "--seed", 2))
        assert proc.returncode == 2 and f"another run (pid {holder.pid}) is writing a model there" in proc.stderr, proc.stderr
        assert not (out / "config.json").exists()
    finally:
        holder.kill()  # kill -9: the kernel drops the lock with its holder
        holder.wait()
    proc = run_cli(*small_train(sst, out, "--seed", 2))
    assert proc.returncode == 0, proc.stderr
    assert api.load_model(out).train_config["seed"] == 2
    assert not (tmp_path / ".m.lock").exists()


def _retamper(out: Path, field: str, value) -> None:
    """Edit a size in config.json and record the edited file's sha256, so the checksum passes."""
    config = json.loads((out / "config.json").read_text())
    config["model"][field] = value
    (out / "config.json").write_text(json.dumps(config))
    meta = json.loads((out / "metadata.json").read_text())
    meta["sha256"]["config.json"] = hashlib.sha256((out / "config.json").read_bytes()).hexdigest()
    (out / "metadata.json").write_text(json.dumps(meta))


@pytest.mark.parametrize("field,value,message", [
    # past the sizes any model may have: refused from the number alone
    ("scale_max", 10**15, "the rating scale holds 1,000,000,000,000,000 ratings, above the most a model may have"),
    ("scale_max", 10**8, "the rating scale holds 100,000,000 ratings, above the most"),
    ("num_layers", 10**7, "num_layers is 10,000,000, above the most a model may have (16)"),
    ("num_layers", 400, "num_layers is 400, above the most a model may have (16)"),
    # within them, but not what the weights hold: refused from the safetensors header
    ("scale_max", 9, "head.weight of shape"),
    ("num_layers", 3, "num_layers 3, the weights hold 1 layer(s)"),
    ("pooling", "attention", "2 weight(s) differ, first attention.bias"),
])
def test_tampered_sizes_are_refused_from_the_header_before_allocating(tiny_model, tmp_path, field, value, message):
    out = tmp_path / "m"
    shutil.copytree(tiny_model, out)
    _retamper(out, field, value)
    start = time.perf_counter()
    with pytest.raises(artifact.ArtifactError) as e:
        artifact.load(out)
    assert time.perf_counter() - start < 5
    assert message in str(e.value) and ("above the most" in message or "do not belong together" in str(e.value))
    assert "\n" not in str(e.value) and len(str(e.value)) < 400
    if field == "num_layers" and value in (400, 3):  # the command line says the same, in one line
        proc = run_cli("predict", "--model", out, "good")
        assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1 and message in proc.stderr


def test_a_model_without_checksums_loads_with_a_warning(tiny_model, tmp_path, capsys):
    out = tmp_path / "m"
    shutil.copytree(tiny_model, out)
    meta = json.loads((out / "metadata.json").read_text())
    for sums in (None, {}, {"model.safetensors": None}):
        meta["sha256"] = sums
        (out / "metadata.json").write_text(json.dumps(meta))
        artifact.load(out)
        assert "records no sha256 for model.safetensors" in capsys.readouterr().err, sums
    artifact.load(tiny_model)
    assert "sha256" not in capsys.readouterr().err
    (out / "metadata.json").write_text("[]")
    proc = run_cli("predict", "--model", out, "good")
    assert proc.returncode == 2 and "metadata.json: expected a JSON object" in proc.stderr


def test_the_card_speaks_of_phrases_only_for_sst_trees():
    """phrases=True is train's default, and means something only for SST trees: a card of a model
    trained on a CSV does not claim it learnt from "every labelled phrase"."""
    from reviewlstm import api
    from reviewlstm.artifact import model_card
    loaded = api.load_model(None)
    meta = json.loads((api.default_model_path() / "metadata.json").read_text())
    train = {**loaded.train_config, "phrases": True, "format": None}
    for path, says in (("reviews.csv", False), ("reviews.csv.gz", False), ("train.txt", True)):
        card = model_card(loaded.config, train, {**meta, "train_data": {**meta["train_data"], "path": path}})
        assert ("every labelled phrase" in card) is says, path
