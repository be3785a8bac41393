"""The rating model, its loss and the artifact format."""
import json

import pytest
import torch

from reviewlstm.inference import artifact
from reviewlstm.inference.artifact import ArtifactError
from reviewlstm.nn.model import ModelConfig, RatingModel, ordinal_loss
from reviewlstm.inference.predict import pad_batch, predict_proba, split_sentences
from reviewlstm.io.text import Vocab


def small_model(**kw) -> RatingModel:
    return RatingModel(ModelConfig(vocab_size=30, embed_dim=8, hidden=6, dropout=0.0, **kw)).eval()


@pytest.mark.parametrize("pooling", ["final", "max", "mean", "attention"])
@pytest.mark.parametrize("cell", ["lstm", "classic-lstm", "rnn"])
def test_a_text_scores_the_same_alone_or_in_a_padded_batch(pooling, cell):
    model = small_model(pooling=pooling, cell=cell)
    texts = [[3, 4, 5, 6, 7, 8], [9, 10], [11, 12, 13]]
    together = predict_proba(model, texts, batch_size=3)
    for i, t in enumerate(texts):
        alone = predict_proba(model, [t])
        torch.testing.assert_close(torch.tensor(alone[0]), torch.tensor(together[i]), rtol=0, atol=1e-6)
    assert together.shape == (3, 5)
    torch.testing.assert_close(torch.tensor(together.sum(1)), torch.ones(3))


def test_seams_embed_then_run_from_embeddings():
    model = small_model()
    ids, lengths = pad_batch([[3, 4, 5], [6]])
    events = model.embed(ids)
    assert events.shape == (2, 3, 8)
    logits, gates = model.from_embeddings(events, lengths, return_gates=True)
    torch.testing.assert_close(logits, model(ids, lengths))
    assert gates["forget"].shape == (1, 2, 2, 3, 6)  # (layers, directions, B, T, H)


def test_a_distribution_gives_rating_and_expected_rating():
    import numpy as np
    from reviewlstm.inference.predict import rating_and_expected
    probs = torch.softmax(torch.tensor([[0.0, 0.0, 0.0, 0.0, 10.0], [0.0, 10.0, 0.0, 0.0, 0.0]]), 1).numpy()
    rating, expected = rating_and_expected(probs, [1, 2, 3, 4, 5])
    assert rating.tolist() == [5, 2] and 4.9 < expected[0] <= 5.0 and abs(expected[1] - 2.0) < 1e-3
    assert rating_and_expected(np.array([0.1, 0.6, 0.3]), [0, 1, 2])[0] == 1  # one distribution, a 0-2 scale


def test_ordinal_loss_prefers_near_misses():
    target = torch.tensor([0])
    near = torch.tensor([[0.0, 5.0, 0.0, 0.0, 0.0]])  # confident in rating 2, truth 1
    far = torch.tensor([[0.0, 0.0, 0.0, 0.0, 5.0]])   # confident in rating 5
    right = torch.tensor([[5.0, 0.0, 0.0, 0.0, 0.0]])
    assert ordinal_loss(right, target) < ordinal_loss(near, target) < ordinal_loss(far, target)
    # cross-entropy cannot tell the two misses apart
    ce = torch.nn.functional.cross_entropy
    assert torch.isclose(ce(near, target), ce(far, target))


def test_split_sentences():
    toks = "it starts well . then it drags ! `` awful '' , he said . end".split()
    assert split_sentences(toks) == [["it", "starts", "well", "."], ["then", "it", "drags", "!"],
                                     ["``", "awful", "''", ",", "he", "said", "."], ["end"]]


def saved(tmp_path):
    model = small_model()
    vocab = Vocab(["<pad>", "<unk>"] + [f"w{i}" for i in range(28)])
    return artifact.save(tmp_path / "m", model, vocab, {"seed": 0}, {"dev_metrics": None}), model


def test_artifact_round_trip_rebuilds_the_model(tmp_path):
    path, model = saved(tmp_path)
    loaded = artifact.load(path)
    assert loaded.config == model.config and len(loaded.vocab) == 30
    ids, lengths = pad_batch([[3, 4, 5]])
    torch.testing.assert_close(loaded.model(ids, lengths), model(ids, lengths))
    assert (path / "MODEL_CARD.md").read_text().startswith("# reviewlstm model card")
    assert json.loads((path / "metadata.json").read_text())["versions"]["torch"] == torch.__version__


@pytest.mark.parametrize("damage,message", [
    (lambda p: (p / "model.safetensors").write_bytes((p / "model.safetensors").read_bytes()[:100]),
     "model.safetensors: cannot read the weights"),
    (lambda p: (p / "model.safetensors").write_bytes(b"\x80\x04not safetensors at all"), "cannot read the weights"),
    (lambda p: (p / "config.json").write_text((p / "config.json").read_text()[:40]), r"config.json:\d+: not valid JSON"),
    (lambda p: (p / "config.json").write_text('{"format": "something-else"}'), "not a reviewlstm model config"),
    (lambda p: (p / "vocab.json").unlink(), "not a reviewlstm model: missing vocab.json"),
    (lambda p: (p / "vocab.json").write_text('["<pad>", "<unk>", "a"]'), "vocab.json has 3 tokens"),
])
def test_damaged_artifacts_give_clear_errors(tmp_path, damage, message):
    path, _ = saved(tmp_path)
    damage(path)
    with pytest.raises(ArtifactError):  # refused, by the recorded checksums where nothing else sees it first
        artifact.load(path)
    if (path / "metadata.json").exists():  # as an artifact saved before checksums: each check names the problem
        meta = json.loads((path / "metadata.json").read_text())
        meta.pop("sha256", None)
        (path / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(ArtifactError, match=message):
        artifact.load(path)


def test_not_a_model_directory(tmp_path):
    with pytest.raises(ArtifactError, match="no such model directory"):
        artifact.load(tmp_path / "nothing")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ArtifactError, match="a model is a directory"):
        artifact.load(tmp_path / "file")


def test_a_network_built_for_loading_skips_its_random_draws_in_that_thread_alone():
    """weights_to_be_loaded: the draws a load overwrites are skipped while the network is built, in
    that thread only; outside it, and in other threads meanwhile, layers initialise as usual."""
    import threading
    from torch import nn
    from reviewlstm.nn.model import weights_to_be_loaded
    seen = {}

    def other_thread():
        torch.manual_seed(1)
        seen["other"] = nn.Linear(4, 4).weight.detach().clone()

    torch.manual_seed(1)
    usual = nn.Linear(4, 4).weight.detach().clone()
    with weights_to_be_loaded():
        skipped = nn.Embedding(3, 4)
        worker = threading.Thread(target=other_thread)
        worker.start()
        worker.join()
    torch.manual_seed(1)
    after = nn.Linear(4, 4).weight.detach().clone()
    assert torch.equal(usual, after) and torch.equal(usual, seen["other"])
    assert skipped.weight.shape == (3, 4)


def test_loading_a_model_and_rating_a_text_import_no_compiler():
    """A quick job's fixed cost: no torch compiler (the size check's meta build), no C++ build tools
    (a cached kernel is imported as it is)."""
    import subprocess
    import sys
    probe = ("import sys\nfrom reviewlstm.apps import cli\ncli.main(['predict', 'a fine film'])\n"
             "print(sorted(m for m in sys.modules if m.startswith(('torch._dynamo', 'torch._inductor', "
             "'torch.utils.cpp_extension', 'setuptools'))))")
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0 and run.stdout.strip().splitlines()[-1] == "[]", run.stdout + run.stderr[-2000:]
