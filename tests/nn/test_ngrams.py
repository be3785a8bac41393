"""The n-gram path beside the recurrent one: the same model as the TF-IDF + LR peer, fitted and mixed
in at the end of training when dev says so, and read the same way by predict, evaluate and explain."""
import json
import random

import numpy as np
import pytest
import torch

from support import write_csv
from reviewlstm import api
from reviewlstm.distillation.baseline import TfidfLR
from reviewlstm.inference.explain import explain
from reviewlstm.nn.model import ModelConfig
from reviewlstm.nn.ngrams import NgramPath
from reviewlstm.training.config import TrainConfig
from reviewlstm.training.train import train

pytestmark = pytest.mark.usefixtures("compiled_kernel")  # runs models: the compiled loop built first

WORDS = [f"w{i}" for i in range(40)]


def random_texts(rng, n, lo=1, hi=25):
    return [[WORDS[j] for j in rng.integers(0, len(WORDS), rng.integers(lo, hi))] for _ in range(n)]


@pytest.mark.parametrize("classes", [[1, 2, 3], [0, 4], [0, 1, 2, 3, 4]])
def test_the_path_is_the_tfidf_lr_peer_over_ids(classes):
    """Oracle: scikit-learn's TfidfVectorizer(1-2-grams, sublinear tf) + LogisticRegression on the
    same tokens gives the same distributions, a rating never seen in training included (probability
    0), a binary training set (one logit) included."""
    rng = np.random.default_rng(0)
    texts = random_texts(rng, 200)
    y = [classes[int(rng.integers(len(classes)))] if sum(len(w) for w in t) % 3 else classes[0] for t in texts]
    stoi = {w: i + 2 for i, w in enumerate(WORDS)}  # 0 <pad>, 1 <unk>, as the vocabulary numbers them
    path = NgramPath.fit([[stoi[w] for w in t] for t in texts], y, 5, len(stoi) + 2)
    peer = TfidfLR.fit([" ".join(t) for t in texts], y)
    new = random_texts(rng, 40, lo=1, hi=15) + [["unseen"], ["w1", "unseen", "w2"]]
    ours = path.probabilities([[stoi.get(w, 1) for w in t] for t in new])
    theirs = peer.proba([" ".join(t) for t in new], list(range(5)))
    assert np.abs(ours - theirs).max() < 1e-6
    assert np.allclose(ours.sum(1), 1)


def synthetic_reviews(n, seed):
    """Each review: neutral filler and three copies of its rating's word, which a linear model over
    words reads at once and a tiny recurrent model trained for one epoch does not."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        rating = rng.randint(1, 5)
        words = [rng.choice(WORDS) for _ in range(12)] + [f"r{rating}"] * 3
        rng.shuffle(words)
        rows.append((" ".join(words), rating))
    return rows


@pytest.fixture(scope="module")
def mixed_model(tmp_path_factory):
    d = tmp_path_factory.mktemp("ngrams")
    train_csv, dev_csv = write_csv(d / "train.csv", synthetic_reviews(240, 0)), write_csv(d / "dev.csv", synthetic_reviews(80, 1))
    logs = []
    result = train(TrainConfig(train=str(train_csv), dev=str(dev_csv), out=str(d / "model"), epochs=1, progress=False,
                               embeddings="random", embed_dim=8, hidden=8, threads=1), log=logs.append)
    return result, d, dev_csv, logs


def test_train_mixes_the_path_in_when_dev_says_so_and_every_reader_reads_the_mixture(mixed_model):
    result, d, dev_csv, logs = mixed_model
    meta = json.loads((d / "model" / "metadata.json").read_text())
    g = meta["ngram_path"]
    assert g["kept"] and 0 <= g["share"] < 1 and g["features"] > 40
    assert g["dev_mixed"]["accuracy"] > g["dev_recurrent"]["accuracy"]
    assert any(line.startswith("n-gram path: TF-IDF 1-2-grams + LR") for line in logs), logs
    loaded = api.load_model(d / "model")
    assert loaded.model.ngrams is not None and loaded.config.ngram_share == g["share"]
    # evaluate reads the saved mixture: the dev figures the run recorded
    ev = api.evaluate(dev_csv, model=d / "model")
    assert ev["accuracy"] == pytest.approx(meta["dev_metrics"]["accuracy"]) == pytest.approx(g["dev_mixed"]["accuracy"])
    assert "slice_recurrent" in g and "## The n-gram path" in (d / "model" / "MODEL_CARD.md").read_text()


@pytest.mark.parametrize("method", ["integrated_gradients", "occlusion"])
def test_explain_reads_the_mixture_and_its_contributions_add_up(mixed_model, method):
    _, d, _, _ = mixed_model
    loaded = api.load_model(d / "model")
    text = "w3 w7 r5 w1 r5 w9 w2 r5 w4"
    e = explain(loaded, text, method=method, steps=64)
    p = api.predict([text], model=loaded)[0]
    assert e.rating == p.rating and np.allclose(e.probabilities, p.probabilities, atol=1e-6)
    assert e.ngram_share == pytest.approx(1 - loaded.config.ngram_share)
    assert np.allclose(e.trajectory[-1], p.probabilities, atol=1e-6)  # after the last word: the prediction
    if method == "integrated_gradients":  # completeness: they add up to f(text) - f(nothing), both paths
        model, cfg, share = loaded.model, loaded.config, loaded.config.ngram_share
        ratings = np.asarray(cfg.ratings, dtype=np.float64)
        with torch.no_grad():
            zero = model.probabilities(model.from_embeddings(torch.zeros(1, 9, cfg.embed_dim), torch.tensor([9])))[0]
        base_ngram = torch.softmax(model.ngrams.intercept.double(), 0).numpy()
        baseline = share * float(zero.double().numpy() @ ratings) + (1 - share) * float(base_ngram @ ratings)
        assert sum(e.contributions) == pytest.approx(e.expected_rating - baseline, abs=0.03)
    r5 = [c for t, c in zip(e.tokens, e.contributions) if t == "r5"]
    assert min(r5) > max(c for t, c in zip(e.tokens, e.contributions) if t != "r5")  # the telling word leads


def test_off_keeps_the_recurrent_path_alone_and_onnx_refuses_a_mixture(mixed_model, tmp_path):
    _, d, dev_csv, _ = mixed_model
    result = train(TrainConfig(train=str(d / "train.csv"), dev=str(dev_csv), out=str(tmp_path / "plain"), epochs=1,
                               progress=False, embeddings="random", embed_dim=8, hidden=8, threads=1, ngram_path="off"),
                   log=lambda s: None)
    plain = api.load_model(result.out)
    assert plain.model.ngrams is None and plain.config.ngram_share == 1.0
    assert "ngram_path" not in json.loads((tmp_path / "plain" / "metadata.json").read_text())
    from reviewlstm.inference.onnx_export import build
    with pytest.raises(ValueError, match="n-gram path .* --ngram-path off"):
        build(api.load_model(d / "model"))


def test_a_config_claiming_a_share_without_a_path_is_refused():
    with pytest.raises(ValueError, match="ngram_share"):
        ModelConfig(vocab_size=10, ngram_share=0.5).validate()
    ModelConfig(vocab_size=10, ngram_share=0.5, ngram_features=3).validate()
