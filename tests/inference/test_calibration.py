"""Calibration: the temperature fit against a known answer, ECE and Brier by their definitions, and
the temperature kept in the model and applied by every reader without moving a rating."""
import json

import numpy as np
import pytest

from support import run_cli
from reviewlstm import api
from reviewlstm.inference.calibration import brier, distributions, ece, fit_temperature, reliability

pytestmark = pytest.mark.usefixtures("compiled_kernel")  # runs models: the compiled loop built first


def _sample(temperature: float, n: int = 20000, k: int = 5, seed: int = 0):
    """Logits, and ratings drawn from softmax(logits / temperature): a model whose right temperature is known."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 3, (n, k))
    p = np.exp(logits / temperature)
    p /= p.sum(1, keepdims=True)
    truth = np.array([rng.choice(k, p=row) for row in p])
    return logits, truth


@pytest.mark.parametrize("true_t", [0.5, 1.0, 2.5])
def test_the_fit_recovers_a_known_temperature(true_t):
    logits, truth = _sample(true_t)
    n = len(truth)
    t = fit_temperature(logits, np.arange(n), np.ones(n), truth)
    assert t == pytest.approx(true_t, rel=0.06)
    # calibrated by construction at the fitted temperature, overconfident at a much lower one
    fitted = distributions(logits, np.arange(n), np.ones(n), n, t)
    sharp = distributions(logits, np.arange(n), np.ones(n), n, t / 3)
    assert ece(fitted, truth) < 0.02 < ece(sharp, truth)
    assert brier(fitted, truth) < brier(sharp, truth)


def test_ece_brier_and_the_bins_by_their_definitions():
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.3, 0.7]])
    truth = np.array([0, 1, 0, 1])
    # bins: 0.9 (two reviews, one right), 0.6 (right), 0.7 (right)
    assert ece(probs, truth) == pytest.approx(0.5 * abs(0.5 - 0.9) + 0.25 * abs(1 - 0.6) + 0.25 * abs(1 - 0.7))
    assert brier(probs, truth) == pytest.approx(np.mean([0.02, 1.62, 0.32, 0.18]))
    bins = reliability(probs, truth)
    assert sum(b["n"] for b in bins) == 4 and all(b["low"] < b["confidence"] <= b["high"] for b in bins)
    assert ece(np.zeros((0, 2)), np.zeros(0, dtype=int)) == 0.0


def test_a_long_text_is_calibrated_as_it_is_read():
    """Pieces (sentences) are averaged after the temperature, weighted by length: predict's rule."""
    logits = np.array([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    owner, weights = np.array([0, 0, 1]), np.array([3.0, 1.0, 2.0])
    got = distributions(logits, owner, weights, 2, 2.0)
    soft = np.exp(logits / 2) / np.exp(logits / 2).sum(1, keepdims=True)
    assert got[0] == pytest.approx((3 * soft[0] + soft[1]) / 4) and got[1] == pytest.approx(soft[2])


def test_calibrate_writes_a_model_that_every_reader_applies(tiny_model, sst, tmp_path):
    out = tmp_path / "calibrated"
    source_t = json.loads((tiny_model / "config.json").read_text())["model"].get("temperature", 1.0)
    proc = run_cli("calibrate", sst / "dev.txt", "--model", tiny_model, "--out", out, "--json")
    assert proc.returncode == 0, proc.stderr
    r = json.loads(proc.stdout)
    t = r["temperature"]
    assert t > 0 and t != 1.0 and r["dev_after"]["nll"] <= r["dev_before"]["nll"] + 1e-9
    assert json.loads((out / "config.json").read_text())["model"]["temperature"] == t
    assert "## Calibration" in (out / "MODEL_CARD.md").read_text()
    assert json.loads((tiny_model / "config.json").read_text())["model"].get("temperature", 1.0) == source_t  # kept
    before, after = api.load_model(tiny_model), api.load_model(out)
    texts = ["a gorgeous , witty film .", "dull and lifeless .", "it is a movie ."]
    for a, b in zip(api.predict(texts, model=before), api.predict(texts, model=after)):
        assert a.rating == b.rating  # no rating moves
        # the same logits, divided by t instead of the source's temperature
        z = np.log(np.asarray(a.probabilities)) * source_t
        want = np.exp(z / t) / np.exp(z / t).sum()
        assert b.probabilities == pytest.approx(want.tolist(), abs=1e-5)
    ev = api.evaluate(sst / "dev.txt", model=after, reliability_png=tmp_path / "rel.png")
    assert ev["temperature"] == t and ev["nll"] == pytest.approx(r["dev_after"]["nll"], abs=1e-4)
    assert (tmp_path / "rel.png").read_bytes()[:4] == b"\x89PNG"
    e = api.explain(texts[0], model=after)
    assert e.probabilities == pytest.approx(api.predict(texts[0], model=after).probabilities, abs=1e-5)


def test_train_fits_the_temperature_on_dev_and_scores_the_slice_calibrated(sst, tmp_path):
    from reviewlstm.training.config import TrainConfig
    from reviewlstm.training.train import train
    logs = []
    train(TrainConfig(train=str(sst / "train.txt"), dev=str(sst / "dev.txt"), out=str(tmp_path / "m"), phrases=False,
                      max_examples=120, epochs=1, hidden=8, embeddings="random", embed_dim=8, progress=False),
          log=logs.append)
    meta = json.loads((tmp_path / "m" / "metadata.json").read_text())
    c = meta["calibration"]
    assert c["fitted_on"] == "dev (220 reviews)"
    assert any(line.startswith(f"calibrated on {c['fitted_on']}: temperature {c['temperature']:.3f}") for line in logs), logs
    assert json.loads((tmp_path / "m" / "config.json").read_text())["model"]["temperature"] == c["temperature"]
    assert {"ece", "brier", "nll"} <= set(meta["holdout_metrics"]) and c["dev_after"]["nll"] <= c["dev_before"]["nll"] + 1e-9
    plain = tmp_path / "plain"
    train(TrainConfig(train=str(sst / "train.txt"), dev=str(sst / "dev.txt"), out=str(plain), phrases=False,
                      max_examples=120, epochs=1, hidden=8, embeddings="random", embed_dim=8, progress=False,
                      calibrate=False), log=lambda s: None)
    assert "calibration" not in json.loads((plain / "metadata.json").read_text())
