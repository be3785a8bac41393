import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def sst_dir() -> Path:
    """SST-5 as laid out for this project: ../shared/data/sst5 beside the checkout (or $REVIEWLSTM_SST5)."""
    env = os.environ.get("REVIEWLSTM_SST5")
    return Path(env) if env else ROOT.parent / "shared" / "data" / "sst5"


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def sst():
    d = sst_dir()
    if not (d / "train.txt").exists():
        pytest.skip(f"SST-5 not found at {d} (set REVIEWLSTM_SST5)")
    return d


def run_cli(*args, input=None, timeout=600):
    """Run `reviewlstm ARGS` as a user would, in a fresh process."""
    return subprocess.run([sys.executable, "-m", "reviewlstm.cli", *map(str, args)], capture_output=True, text=True,
                          input=input, timeout=timeout)


@pytest.fixture(scope="session")
def tiny_model(sst, tmp_path_factory):
    """A small real model: 400 SST-5 sentences, 2 epochs, hidden 16, GloVe; trained through the CLI."""
    out = tmp_path_factory.mktemp("models") / "tiny"
    proc = run_cli("train", "--train", sst / "train.txt", "--dev", sst / "dev.txt", "--out", out,
                   "--max-examples", 400, "--no-phrases", "--epochs", 2, "--hidden", 16, "--seed", 1, "--no-progress")
    assert proc.returncode == 0, proc.stderr
    return out
