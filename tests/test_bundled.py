"""The model that ships inside the package: works right after install, offline, with no --model."""
import json

import pytest

from conftest import run_cli
from reviewlstm import api


def test_predict_with_the_bundled_model():
    proc = run_cli("predict", "a gorgeous, witty, seductive movie.", "--json")
    assert proc.returncode == 0, proc.stderr
    p = json.loads(proc.stdout)
    assert p["rating"] >= 4 and abs(sum(p["probabilities"]) - 1) < 1e-6
    low = api.predict("a dull, lifeless and utterly tedious mess.")
    assert low.rating <= 2


def test_bundled_model_is_what_its_card_says(sst):
    loaded = api.load_model()
    assert loaded.config.cell == "lstm"
    size = sum(f.stat().st_size for f in loaded.path.iterdir() if f.is_file())
    assert size <= 20 * 1024 * 1024
    claimed = loaded.metadata["dev_metrics"]
    scores = api.evaluate(sst / "dev.txt", long_text="whole")
    assert scores["accuracy"] == pytest.approx(claimed["accuracy"], abs=1e-9)
    assert scores["accuracy"] >= 0.47
