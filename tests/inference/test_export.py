"""ONNX export, run by onnxruntime: the same probabilities as the native model, for any batch and
length, every pooling, one and two layers, both directions."""
import numpy as np
import pytest
import torch

from support import run_cli
from reviewlstm import api
from reviewlstm.io.data import read_examples
from reviewlstm.inference.onnx_export import onnx_ids
from reviewlstm.training.config import TrainConfig
from reviewlstm.training.train import train

pytestmark = pytest.mark.usefixtures("compiled_kernel")  # runs models: the compiled loop built first

ort = pytest.importorskip("onnxruntime")  # the test extras install it: a skip here is an install problem


def native(loaded, ids, lengths):
    with torch.no_grad():
        return loaded.model.probabilities(loaded.model(torch.from_numpy(ids), torch.from_numpy(lengths))).numpy()


def exported(path, ids, lengths):
    runtime = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return runtime.run(["probabilities"], {"ids": ids, "lengths": lengths})[0]


def test_the_tiny_model_exports_and_agrees_on_a_padded_batch(tiny_model, sst, tmp_path):
    loaded = api.load_model(tiny_model)
    path = api.export(tmp_path / "onnx", model=loaded)
    assert {p.name for p in path.parent.iterdir()} == {"model.onnx", "vocab.json", "config.json", "MODEL_CARD.md"}
    texts = [e.text for e in read_examples(sst / "dev.txt")][:40]
    ids, lengths, owner, _ = onnx_ids(loaded, texts)
    assert len(set(lengths.tolist())) > 5  # reviews of many lengths in one padded batch
    got, want = exported(path, ids, lengths), native(loaded, ids, lengths)
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert (got.argmax(1) == want.argmax(1)).all()
    # one review alone: the same answer as in the batch (padding changes nothing)
    np.testing.assert_allclose(exported(path, ids[:1, :lengths[0]], lengths[:1]), got[:1], atol=1e-5)


@pytest.mark.parametrize("pooling,layers,bidirectional", [("mean", 2, True), ("max", 1, False), ("attention", 1, True)])
def test_every_pooling_and_depth_agrees(sst, tmp_path, pooling, layers, bidirectional):
    out = tmp_path / "m"
    train(TrainConfig(train=str(sst / "train.txt"), out=str(out), phrases=False, max_examples=60, epochs=1, hidden=6,
                      embeddings="random", embed_dim=8, pooling=pooling, num_layers=layers, bidirectional=bidirectional,
                      progress=False, holdout=0), log=lambda s: None)
    loaded = api.load_model(out)
    path = api.export(tmp_path / "onnx", model=loaded)
    texts = [e.text for e in read_examples(sst / "dev.txt")][:25]
    ids, lengths, _, _ = onnx_ids(loaded, texts)
    np.testing.assert_allclose(exported(path, ids, lengths), native(loaded, ids, lengths), atol=1e-5)


def test_the_cli_exports_and_refuses_in_one_line(tiny_model, sst, tmp_path):
    proc = run_cli("export", "--model", tiny_model, "--out", tmp_path / "o")
    assert proc.returncode == 0 and "model.onnx" in proc.stdout, proc.stderr
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    busy = run_cli("export", "--model", tiny_model, "--out", tmp_path / "busy")
    assert busy.returncode == 2 and "holds other files" in busy.stderr and (tmp_path / "busy" / "notes.txt").exists()
    classic = tmp_path / "classic"
    train(TrainConfig(train=str(sst / "train.txt"), out=str(classic), phrases=False, max_examples=40, epochs=1, hidden=4,
                      embeddings="random", embed_dim=4, cell="classic-lstm", progress=False, holdout=0), log=lambda s: None)
    refused = run_cli("export", "--model", classic, "--out", tmp_path / "c")
    assert refused.returncode == 2 and "covers the four-gate LSTM" in refused.stderr and "Traceback" not in refused.stderr


def test_an_export_never_writes_through_a_link_and_leaves_nothing_when_it_fails(tiny_model, tmp_path):
    import shutil
    from reviewlstm import api
    users = tmp_path / "precious.json"
    users.write_text("the user's own file")
    out = tmp_path / "E"
    out.mkdir()
    (out / "vocab.json").symlink_to(users)
    with pytest.raises(ValueError, match="holds symbolic links"):
        api.export(out, model=tiny_model)
    assert users.read_text() == "the user's own file"
    # a model without its card exports without one, whole; nothing half-written on the way
    bare = tmp_path / "bare"
    shutil.copytree(tiny_model, bare)
    (bare / "MODEL_CARD.md").unlink()
    path = api.export(tmp_path / "E2", model=bare)
    assert sorted(p.name for p in path.parent.iterdir()) == ["config.json", "model.onnx", "vocab.json"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary directory left


def test_the_graphs_inputs_refuse_what_predict_refuses(tiny_model):
    from reviewlstm import api
    from reviewlstm.inference.onnx_export import onnx_ids
    loaded = api.load_model(tiny_model)
    for bad in ("", "   ", "<br />"):
        with pytest.raises(ValueError, match="text 2 "):
            onnx_ids(loaded, ["a fine film", bad])
