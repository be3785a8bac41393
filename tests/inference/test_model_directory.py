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
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from support import run_cli
from reviewlstm import api
from reviewlstm.inference import artifact

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
    proc = subprocess.run([sys.executable, "-m", "reviewlstm.apps.cli", *map(str, small_train(sst, "."))], cwd=home,
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
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from reviewlstm.inference import artifact\n"
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
    from reviewlstm.inference.card import model_card
    loaded = api.load_model(None)
    meta = json.loads((api.default_model_path() / "metadata.json").read_text())
    train = {**loaded.train_config, "phrases": True, "format": None}
    for path, says in (("reviews.csv", False), ("reviews.csv.gz", False), ("train.txt", True)):
        card = model_card(loaded.config, train, {**meta, "train_data": {**meta["train_data"], "path": path}})
        assert ("every labelled phrase" in card) is says, path


def _edit_metadata(out: Path, edit) -> None:
    meta = json.loads((out / "metadata.json").read_text())
    edit(meta)
    (out / "metadata.json").write_text(json.dumps(meta))


@pytest.mark.parametrize("scores,message", [
    ("delete", "conformal.scores must be a non-empty list of numbers, got NoneType"),
    ("a string", "conformal.scores must be a non-empty list of numbers, got str"),
    (7, "conformal.scores must be a non-empty list of numbers, got int"),
    ([[0.1], [0.2]], "conformal.scores[0] must be a number in [0, 1], got [0.1]"),
    (["x"], "conformal.scores[0] must be a number in [0, 1], got 'x'"),
    ([-5.0], "conformal.scores[0] must be a number in [0, 1], got -5.0"),
    ([0.1, float("nan")], "conformal.scores[1] must be a number in [0, 1], got nan"),
    ([0.9, 0.1], "conformal.scores must be sorted"),
    ([], "conformal.scores must be a non-empty list of numbers, got an empty list"),
])
def test_tampered_rating_set_scores_are_refused_at_load_naming_the_field(tiny_model, tmp_path, scores, message):
    """The rating sets' scores (metadata.json) change a prediction: checked at load, on every surface,
    in one line naming the file and the field, before a server says it is ready."""
    out = tmp_path / "m"
    shutil.copytree(tiny_model, out)

    def edit(meta):
        if scores == "delete":
            del meta["conformal"]["scores"]
        else:
            meta["conformal"]["scores"] = scores
        meta["conformal"]["n"] = len(scores) if isinstance(scores, list) else 1
    _edit_metadata(out, edit)
    with pytest.raises(artifact.ArtifactError) as e:
        artifact.load(out)
    assert str(e.value).startswith(f"{out / 'metadata.json'}: {message}")
    if scores == "delete":  # the command line says the same, in one line (once: each call starts a process)
        proc = run_cli("predict", "--model", out, "--coverage", "0.9", "good")
        assert proc.returncode == 2 and message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_rating_set_scores_are_under_the_checksums(tiny_model, tmp_path):
    """A valid-looking edit of the scores (NaN is refused anyway) is caught by the sum saved beside the
    files' own; an older model without that sum loads with its scores checked."""
    out = tmp_path / "m"
    shutil.copytree(tiny_model, out)
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["sha256"]["conformal"]
    _edit_metadata(out, lambda m: m["conformal"].update(scores=[0.0] * m["conformal"]["n"]))
    with pytest.raises(artifact.ArtifactError, match="conformal: its sha256 does not match"):
        artifact.load(out)
    _edit_metadata(out, lambda m: m["sha256"].pop("conformal"))
    assert artifact.load(out).metadata["conformal"]["scores"][0] == 0.0


@pytest.mark.parametrize("temperature", [1e-300, 0.0, -1.0, 1e308, float("nan"), "hot", True])
def test_a_temperature_outside_its_range_is_refused_at_load(tiny_model, tmp_path, temperature):
    out = tmp_path / "m"
    shutil.copytree(tiny_model, out)
    _retamper(out, "temperature", temperature)
    with pytest.raises(artifact.ArtifactError, match=r"temperature must be a (number in \[0.01, 100\]|float)"):
        artifact.load(out)
    if temperature == 1e-300:  # the temperature that makes NaN probabilities: one line, nothing on stdout
        proc = run_cli("predict", "--model", out, "--json", "good")
        assert proc.returncode == 2 and "temperature must be" in proc.stderr and proc.stdout == ""


def test_the_weights_file_is_as_readable_as_its_neighbours(tiny_model):
    import stat
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in Path(tiny_model).iterdir() if p.is_file()}
    assert modes["model.safetensors"] == modes["config.json"] == modes["vocab.json"]


# values a hand-edited or damaged config.json or metadata.json may hold
_ANY = st.one_of(st.none(), st.booleans(), st.integers(-10**20, 10**20), st.floats(allow_nan=True, allow_infinity=True),
                 st.text(max_size=12), st.lists(st.floats(allow_nan=True), max_size=4))


@settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(field=st.sampled_from(["temperature", "scale_min", "scale_max", "hidden", "num_layers", "embed_dim", "dropout",
                              "ngram_share", "labels", "max_length", "pooling", "long_text"]),
       value=_ANY, conformal=st.one_of(st.none(), _ANY, st.lists(st.floats(-2, 2), max_size=5)))
def test_any_config_or_metadata_value_loads_sanely_or_is_refused_in_one_line(tiny_model, tmp_path_factory, field,
                                                                             value, conformal):
    """Property: whatever a config field or the rating-set scores hold, loading either succeeds and the
    model rates with finite probabilities that sum to 1, or it is refused with one ArtifactError line;
    never another exception, never NaN."""
    import math
    out = tmp_path_factory.mktemp("prop") / "m"
    shutil.copytree(tiny_model, out)
    _retamper(out, field, value)
    if conformal is not None:
        _edit_metadata(out, lambda m: (m["conformal"].update(scores=conformal), m["sha256"].pop("conformal", None)))
    try:
        loaded = artifact.load(out)
    except artifact.ArtifactError as e:
        assert "\n" not in str(e) and str(e)
        return
    from reviewlstm import api
    p = api.predict("a gorgeous, witty film", model=loaded, coverage=0.9 if "conformal" in loaded.metadata else None)
    assert all(math.isfinite(x) for x in p.probabilities) and abs(sum(p.probabilities) - 1) < 1e-6
    json.dumps(p.to_dict(), allow_nan=False)  # valid JSON: no NaN anywhere
    artifact.forget(out)
