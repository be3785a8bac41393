import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
# A sample of SST-5's trees, committed (tests/data/README.md: source, counts, checksums), so the
# suite tests the whole product in any clone; the full treebank in ../shared is for benchmarks.
SST = ROOT / "tests" / "data" / "sst5"
KERNEL_LINE = pytest.StashKey[str]()


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def sst():
    return SST


@pytest.fixture(scope="session", autouse=True)
def compiled_kernel(request):
    """Build (or load from the cache) the compiled four-gate loop once, before any test, and say how
    it went (a line in the summary): otherwise whichever test first trains or scores pays the build, and a broken build
    shows up as that test's mystery. With a C++ compiler the build must work (a failure is a bug);
    without one (or REVIEWLSTM_KERNEL=off) the Python loop runs and the kernel's own tests say so."""
    from reviewlstm import kernels
    start = time.perf_counter()
    module = kernels.load(verbose=False) if kernels.enabled() else None
    line = f"reviewlstm kernel: {kernels.status()} in {time.perf_counter() - start:.1f} s"
    request.config.stash[KERNEL_LINE] = line
    return module


def pytest_terminal_summary(terminalreporter, config):
    if KERNEL_LINE in config.stash:
        terminalreporter.write_line(config.stash[KERNEL_LINE])


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
