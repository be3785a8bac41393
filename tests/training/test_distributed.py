"""Training on two processes with torchrun + DDP (gloo, CPU): the same model as one process."""
import pytest
pytestmark = [pytest.mark.usefixtures("compiled_kernel"), pytest.mark.distributed]
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file

from support import run_cli
from reviewlstm import api
from reviewlstm.training.config import TrainConfig
from reviewlstm.training.train import train


ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def torchrun(*args, timeout=300):
    # one thread each, as two processes sharing a 2-core machine should
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           "-m", "reviewlstm", *map(str, args)], capture_output=True, text=True, timeout=timeout, env=env)
    if proc.returncode != 0:  # every process's whole log, kept: a rare failure must be readable afterwards
        ARTIFACTS.mkdir(exist_ok=True)
        log = ARTIFACTS / f"torchrun-{os.getpid()}-{time.time_ns()}.log"
        log.write_text(f"$ torchrun {' '.join(map(str, args))}\nexit {proc.returncode}\n--- stdout\n{proc.stdout}\n"
                       f"--- stderr\n{proc.stderr}")
        proc.stderr = f"(whole log: {log})\n" + proc.stderr
    return proc


def largest_difference(a, b) -> float:
    a, b = load_file(str(a)), load_file(str(b))
    assert a.keys() == b.keys()
    return max(float((a[k] - b[k]).abs().max()) for k in a)


def common(sst, out, *extra):
    return ("train", "--train", sst / "train.txt", "--out", out, "--no-phrases", "--hidden", 8, "--no-progress",
            "--embeddings", "random", "--holdout", 0, *extra)


@pytest.mark.parametrize("batch,examples", [(4, 21), (64, 151)])
def test_two_processes_take_the_same_steps_as_one(sst, tmp_path, batch, examples):
    # 21 examples in batches of 4: the last global batch has one example, so one process's shard is
    # empty (it steps with weight 0); 151 in batches of 64: a ragged last batch split 12 / 11
    args = ("--max-examples", examples, "--batch-size", batch, "--epochs", 1, "--dropout", 0)
    one = run_cli(*common(sst, tmp_path / "one", *args))
    assert one.returncode == 0, one.stderr
    two = torchrun(*common(sst, tmp_path / "two", *args))
    assert two.returncode == 0, two.stderr.splitlines()[0] + "\n" + two.stderr[-2000:]
    assert largest_difference(tmp_path / "one" / "model.safetensors", tmp_path / "two" / "model.safetensors") < 1e-5


def test_torchrun_train_writes_one_model_within_the_seed_range(sst, tmp_path):
    settings = dict(train=str(sst / "train.txt"), dev=str(sst / "dev.txt"), phrases=False, max_examples=400,
                    hidden=16, epochs=2, progress=False, threads=1)
    single = [train(TrainConfig(out=str(tmp_path / f"s{seed}"), seed=seed, **settings), log=lambda s: None)
              .dev_metrics["accuracy"] for seed in (0, 1, 2)]
    out = tmp_path / "ddp"
    proc = torchrun("train", "--train", sst / "train.txt", "--dev", sst / "dev.txt", "--out", out, "--no-phrases",
                    "--max-examples", 400, "--hidden", 16, "--epochs", 2, "--no-progress", "--seed", 0)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.count("model written to") == 1  # rank 0 alone reports, logs and writes
    assert proc.stderr.count("train: ") == 1 and "distributed: 2 processes (gloo), 1 thread(s) each" in proc.stderr
    assert not list(tmp_path.glob(".ddp.*"))
    accuracy = api.load_model(out).metadata["dev_metrics"]["accuracy"]
    spread = max(single) - min(single)
    assert min(single) - max(spread, 0.03) <= accuracy <= max(single) + max(spread, 0.03), (accuracy, single)
    pred = run_cli("predict", "--model", out, "--json", "a gorgeous , witty movie .")
    assert pred.returncode == 0 and '"rating"' in pred.stdout


def test_a_distributed_run_resumes_to_the_uninterrupted_weights(sst, tmp_path):
    args = ("--max-examples", 151, "--dropout", 0.3, "--dev", sst / "dev.txt")
    whole = torchrun(*common(sst, tmp_path / "whole", *args, "--epochs", 2))
    assert whole.returncode == 0, whole.stderr[-2000:]
    first = torchrun(*common(sst, tmp_path / "cut", *args, "--epochs", 1))
    assert first.returncode == 0, first.stderr[-2000:]
    rest = torchrun(*common(sst, tmp_path / "cut", *args, "--epochs", 2, "--resume"))
    assert rest.returncode == 0 and "resuming after epoch 1" in rest.stderr, rest.stderr[-2000:]
    assert largest_difference(tmp_path / "whole.work" / "checkpoint" / "model.safetensors",
                              tmp_path / "cut.work" / "checkpoint" / "model.safetensors") < 1e-5


def test_a_global_batch_that_does_not_divide_is_refused(sst, tmp_path):
    proc = torchrun(*common(sst, tmp_path / "m", "--max-examples", 30, "--batch-size", 5, "--epochs", 1), timeout=120)
    assert proc.returncode != 0
    assert "reviewlstm train: error: batch_size 5 is the global batch and must divide among the 2 processes" in proc.stderr
    assert "reviewlstm/training/train.py" not in proc.stderr  # one line from each process; torchrun's own report follows
