"""The vanishing-gradient study on a small instance."""
import json
import subprocess
import sys

import torch

from reviewlstm.training.gradients import BASELINE_MSE, Regressor, StudyConfig, gradient_norms, make_batch, train_on_task


def test_rnn_gradient_vanishes_where_the_lstms_survives():
    cfg = StudyConfig(batch=32)
    norms = {}
    for cell in ("lstm", "classic-lstm", "rnn"):
        torch.manual_seed(0)
        g = gradient_norms(Regressor(cell, 32), 60, cfg, torch.Generator().manual_seed(0))
        assert len(g) == 60 and all(x >= 0 for x in g)
        norms[cell] = g[-1 - 50] / g[-1]  # 50 steps back, relative to the last step
    # the RNN's gradient 50 steps back is orders of magnitude below either LSTM's
    assert norms["rnn"] < 1e-3 * norms["lstm"]
    assert norms["rnn"] < 1e-3 * norms["classic-lstm"]


def test_adding_problem_batches():
    events, targets = make_batch(16, 40, torch.Generator().manual_seed(0))
    assert events.shape == (16, 40, 2) and targets.shape == (16,)
    assert torch.all(events[:, :, 1].sum(1) == 2)  # exactly two markers
    assert torch.all(events[:, :4, 1].sum(1) == 1)  # one in the first tenth
    torch.testing.assert_close((events[:, :, 0] * events[:, :, 1]).sum(1), targets)


def test_lstm_learns_a_short_adding_problem():
    cfg = StudyConfig(steps=300, eval_every=50, solved_at=2.0)
    _, acc, mse, steps, _ = train_on_task("lstm", 8, cfg, log=lambda line: None)
    assert steps == 300
    assert mse < BASELINE_MSE / 3, mse


def test_gradients_command_writes_json_and_png(tmp_path):
    out = tmp_path / "study"
    proc = subprocess.run([sys.executable, "-m", "reviewlstm.apps.cli", "gradients", "--out", str(out),
                           "--cells", "lstm,rnn", "--lengths", "6", "--steps", "20", "--gradient-length", "30"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    data = json.loads((out / "gradients.json").read_text())
    assert set(data["accuracy"]) == {"lstm", "rnn"}
    assert len(data["gradient_norms"]["init"]["rnn"]) == 30
    assert len(data["gradient_norms"]["trained"]["lstm"]) == 30
    assert (out / "gradients.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "lstm" in proc.stdout and "wrote" in proc.stdout


def test_gradients_command_rejects_bad_options(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "reviewlstm.apps.cli", "gradients", "--out", str(tmp_path),
                           "--cells", "gru"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "unknown cell 'gru'" in proc.stderr and "Traceback" not in proc.stderr
