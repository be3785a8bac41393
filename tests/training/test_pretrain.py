"""The language model that teaches the layer to read before it rates (reviewlstm pretrain)."""
from __future__ import annotations

import csv
import json

import pytest
import torch

from support import run_cli
from reviewlstm import api
from reviewlstm.inference import artifact
from reviewlstm.nn.model import ModelConfig, RatingModel
from reviewlstm.training.pretrain import LanguageModel, PretrainConfig, pretrain

pytestmark = pytest.mark.usefixtures("compiled_kernel")


def test_each_direction_predicts_only_from_the_words_it_has_read():
    """The forward output at t has read words 0..t (it predicts t + 1), the backward output at t has
    read words t..T-1 (it predicts t - 1): changing the last word leaves the forward outputs before it
    alone, changing the first leaves the backward outputs after it alone."""
    torch.manual_seed(0)
    net = RatingModel(ModelConfig(vocab_size=50, embed_dim=8, hidden=6, bidirectional=True, scale_min=1, scale_max=2))
    net.eval()
    ids = torch.randint(2, 50, (3, 9))
    lengths = torch.full((3,), 9)
    out = net.rnn(net.embed(ids), lengths)[0]
    last, first = ids.clone(), ids.clone()
    last[:, -1] = (last[:, -1] + 1) % 48 + 2
    first[:, 0] = (first[:, 0] + 1) % 48 + 2
    out_last = net.rnn(net.embed(last), lengths)[0]
    out_first = net.rnn(net.embed(first), lengths)[0]
    H = 6
    assert torch.equal(out[:, :-1, :H], out_last[:, :-1, :H]) and not torch.equal(out[:, -1, :H], out_last[:, -1, :H])
    assert torch.equal(out[:, 1:, H:], out_first[:, 1:, H:]) and not torch.equal(out[:, 0, H:], out_first[:, 0, H:])
    # the loss is each direction's mean NLL of its next word, <unk> and <pad> never a target
    lm = LanguageModel(net, 50, [10], dropout=0.0).eval()
    ids[0, 4] = 1  # an <unk>
    ahead, behind = lm(ids)
    states = net.rnn(net.embed(ids), lengths)[0]
    logp = lm.forward_words.log_prob(states[:, :-1, :H].reshape(-1, H))
    targets = ids[:, 1:].reshape(-1)
    keep = targets > 1
    assert torch.allclose(ahead, -logp[keep, targets[keep]].mean(), atol=1e-5)
    logp = lm.backward_words.log_prob(states[:, 1:, H:].reshape(-1, H))
    targets = ids[:, :-1].reshape(-1)
    keep = targets > 1
    assert torch.allclose(behind, -logp[keep, targets[keep]].mean(), atol=1e-5)


def test_pretraining_learns_the_texts_and_train_starts_from_its_layer(tmp_path, sst):
    texts = tmp_path / "unrated.csv"
    with open(texts, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "text"])
        for i in range(400):
            w.writerow([i, "the film is good and the cast is fine ." if i % 2 else "a dull plot , a tired cast ."])
    out = tmp_path / "lm"
    lines = []
    result = pretrain(PretrainConfig(texts=[str(texts)], out=str(out), min_freq=1, embeddings="random", embed_dim=16,
                                     hidden=16, seq_len=20, batch_size=16, epochs=4, lr=1e-2, progress=False),
                      log=lines.append)
    vocab_size = len(json.loads((out / "vocab.json").read_text()))
    # far below a uniform guess over the vocabulary: it learnt which word follows which
    assert result.perplexity["forward"] < vocab_size / 2 and result.perplexity["backward"] < vocab_size / 2
    meta = artifact.load(out).metadata["pretraining"]
    assert meta["tokens"] == result.tokens == 200 * 10 + 200 * 8  # every text's tokens, read once
    assert any(line.startswith("pretrain: held-out perplexity") for line in lines)
    # train --init-from: the layer and the shared words, never the language model's head
    rated = tmp_path / "rated.csv"
    with open(rated, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["text", "rating"])
        for i in range(60):
            w.writerow(["the film is good" if i % 2 else "a dull plot", 1 + i % 2])
    logs = []
    api.train(train=str(rated), out=str(tmp_path / "m"), init_from=str(out), embeddings="random", embed_dim=16,
              hidden=16, epochs=1, scale_min=1, scale_max=2, progress=False, log=logs.append)
    assert any("its layer (a language model: a new head)" in line for line in logs), logs


def test_pretrain_refuses_in_one_line(tmp_path):
    proc = run_cli("pretrain", "--texts", tmp_path / "none.csv", "--out", tmp_path / "lm")
    assert proc.returncode == 2 and "none.csv: no such file (--texts)" in proc.stderr
    tiny = tmp_path / "tiny.csv"
    tiny.write_text("text\na film\n")
    proc = run_cli("pretrain", "--texts", tiny, "--out", tmp_path / "lm", "--embeddings", "random", "--embed-dim", 8)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].endswith("too little text to pretrain on")
