"""Rating sets: runs of neighbouring ratings, the coverage guarantee on exchangeable data, and the
sets carried by every surface once a model is calibrated."""
import csv
import json

import numpy as np
import pytest

from support import run_cli
from reviewlstm import api
from reviewlstm.inference import conformal


def test_the_set_is_a_run_grown_towards_the_likelier_neighbour():
    p = np.array([0.03, 0.09, 0.29, 0.48, 0.11])
    order, before = conformal._growth(p)
    assert order == [3, 2, 4, 1, 0] and before == pytest.approx([0.0, 0.48, 0.77, 0.88, 0.97])
    assert conformal.rating_set(p, 0.2) == (3, 3)      # the top rating's score is 0: never an empty set
    assert conformal.rating_set(p, 0.5) == (2, 3)
    assert conformal.rating_set(p, 0.88) == (1, 4)     # a score exactly at q: taken
    assert conformal.rating_set(p, 1.5) == (0, 4)      # q above 1: every rating
    # a review's score is the mass the run holds just before its true rating joins
    assert conformal.scores(p[None, :], np.array([4]))[0] == pytest.approx(0.77)
    with pytest.raises(ValueError, match="coverage must be between 0 and 1"):
        conformal.threshold([0.5], 1.0)
    assert conformal.threshold([0.2, 0.4, 0.6], 0.5) == 0.4 and conformal.threshold([0.2], 0.9) == np.inf


@pytest.mark.parametrize("coverage", [0.8, 0.9])
def test_coverage_holds_on_new_exchangeable_reviews(coverage):
    """Split conformal: calibrated on one half, the sets hold the truth at the coverage asked on the
    other (seeded: the same numbers every run), narrower than every rating."""
    rng = np.random.default_rng(0)
    # ordered ratings: the model's distribution is centred near the truth, now and then a star off
    truth = rng.integers(0, 5, 6000)
    centre = truth + rng.normal(0, 0.9, 6000)
    logits = -((np.arange(5)[None, :] - centre[:, None]) ** 2) * 0.5
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    kept = conformal.calibrate(probs[:3000], truth[:3000], "the first half")
    r = conformal.evaluate(probs[3000:], truth[3000:], kept, coverage)
    assert abs(r["reached"] - coverage) < 0.025 and r["mean_size"] < 5


def _rated_csv(path, sst, n=160):
    from reviewlstm.io.data import read_examples
    rows = [(e.text, e.rating) for e in read_examples(sst / "train.txt")][:n]
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["text", "rating"])
        w.writerows(rows)
    return path


def test_a_calibrated_model_carries_sets_everywhere(tiny_model, sst, tmp_path):
    out = tmp_path / "sets"
    proc = run_cli("calibrate", _rated_csv(tmp_path / "held.csv", sst), "--model", tiny_model, "--out", out)
    assert proc.returncode == 0, proc.stderr
    kept = json.loads((out / "metadata.json").read_text())["conformal"]
    assert kept["n"] == 160 and kept["scores"] == sorted(kept["scores"])
    text = "a gorgeous , witty , seductive movie ."
    one = json.loads(run_cli("predict", "--model", out, text, "--json", "--coverage", "0.9").stdout)
    assert one["coverage"] == 0.9 and one["rating"] in one["rating_set"]
    assert one["rating_set"] == list(range(one["rating_set"][0], one["rating_set"][-1] + 1))  # a run
    line = run_cli("predict", "--model", out, text, "--coverage", "0.9").stdout
    assert "(with 90% coverage: " in line
    ev = json.loads(run_cli("evaluate", sst / "dev.txt", "--model", out, "--coverage", "0.9", "--json").stdout)
    sets = ev["rating_sets"]
    assert sets["target"] == 0.9 and 0 <= sets["reached"] <= 1 and 1 <= sets["mean_size"] <= 5
    src = tmp_path / "in.csv"
    src.write_text('id,text\n1,a fine film\n2,""\n3,awful\n')
    scored = run_cli("predict", "--model", out, "--input", src, "--output", tmp_path / "o.csv", "--coverage", "0.8",
                     "--no-progress")
    assert scored.returncode == 0, scored.stderr
    rows = list(csv.DictReader(open(tmp_path / "o.csv")))
    assert [bool(r["set_low"]) for r in rows] == [True, False, True]  # the empty row: an error, no set
    assert all(int(r["set_low"]) <= int(r["predicted_rating"]) <= int(r["set_high"]) for r in rows if r["set_low"])
    # a model without the calibration: one line, nothing else
    bare = run_cli("predict", "--model", tiny_model, text, "--coverage", "0.9")
    if "conformal" not in json.loads((tiny_model / "metadata.json").read_text()):
        assert bare.returncode == 2 and "no rating-set calibration" in bare.stderr and "Traceback" not in bare.stderr
    bad = run_cli("predict", "--model", out, text, "--coverage", "1.5")
    assert bad.returncode == 2 and "coverage between 0 and 1" in bad.stderr


def test_train_calibrates_the_sets_on_its_untouched_slice(sst, tmp_path):
    from reviewlstm.training.config import TrainConfig
    from reviewlstm.training.train import train
    train(TrainConfig(train=str(sst / "train.txt"), out=str(tmp_path / "m"), phrases=False, max_examples=200,
                      epochs=1, hidden=8, embeddings="random", embed_dim=8, progress=False), log=lambda s: None)
    meta = json.loads((tmp_path / "m" / "metadata.json").read_text())
    assert meta["conformal"]["n"] == meta["holdout_metrics"]["n"] > 0
    assert "validation slice" in meta["conformal"]["fitted_on"]
    p = api.predict("a fine film", model=tmp_path / "m", coverage=0.9)
    assert p.rating in p.rating_set and p.coverage == 0.9
