"""A model directory written by an earlier version loads and predicts exactly as it did then.

tests/data/legacy_model/ was saved by the commit named in legacy_predictions.json, whose code also
recorded these predictions (tests/data/make_legacy_predictions.py). Refactoring must not move them:
the same rating, probabilities within 1e-6.
"""
import json
from pathlib import Path

import pytest

from reviewlstm import api

pytestmark = pytest.mark.usefixtures("compiled_kernel")  # runs models: the compiled loop built first

DATA = Path(__file__).resolve().parents[1] / "data"


@pytest.fixture(scope="module")
def recorded():
    return json.loads((DATA / "legacy_predictions.json").read_text())["predictions"]


def test_legacy_model_predicts_as_when_it_was_saved(recorded):
    model = api.load_model(DATA / "legacy_model")
    got = api.predict([r["text"] for r in recorded], model=model)
    assert len(got) == len(recorded) > 200
    assert any(r["read_as"] == "sentences" for r in recorded)  # long texts read sentence by sentence
    for r, p in zip(recorded, got):
        assert p.rating == r["rating"], r["text"]
        assert p.read_as == r["read_as"]
        assert p.probabilities == pytest.approx(r["probabilities"], abs=1e-6)
        assert p.expected_rating == pytest.approx(r["expected_rating"], abs=1e-6)


def test_legacy_model_explains_as_when_it_was_saved():
    recorded = json.loads((DATA / "legacy_predictions.json").read_text())["explanations"]
    model = api.load_model(DATA / "legacy_model")
    assert len(recorded) == 4
    for r in recorded:
        e = api.explain(r["text"], model=model)
        assert e.rating == r["rating"]
        assert e.probabilities == pytest.approx(r["probabilities"], abs=1e-6)
        assert e.contributions == pytest.approx(r["contributions"], abs=1e-5)
        assert len(e.trajectory) == len(r["trajectory"])
        for got, want in zip(e.trajectory, r["trajectory"]):
            assert got == pytest.approx(want, abs=1e-6)
        assert set(e.gates) == set(r["gates"])
        for name, mean in r["gates"].items():
            assert e.gates[name]["mean"] == pytest.approx(mean, abs=1e-6), name
