import os
import time
from pathlib import Path

import pytest
import torch

from support import run_cli

ROOT = Path(__file__).resolve().parents[1]
# A sample of SST-5's trees, committed (tests/data/README.md: source, counts, checksums), so the
# suite tests the whole product in any clone; the full treebank in ../shared is for benchmarks.
SST = ROOT / "tests" / "data" / "sst5"
KERNEL_LINE = pytest.StashKey[str]()


def pytest_configure(config):
    # Without a GPU the Triton backend's kernels run in Triton's interpreter on CPU tensors, so their
    # logic is held to the oracle on every machine; the switch must be set before Triton is imported.
    if not torch.cuda.is_available():
        os.environ.setdefault("TRITON_INTERPRET", "1")


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def sst():
    return SST


@pytest.fixture(scope="session")
def compiled_kernel(request):
    """Build (or load from the cache) the compiled four-gate loop once, before the first test that
    runs a model, and say how it went (a line in the summary): otherwise whichever test first trains
    or scores pays the build, and a broken build shows up as that test's mystery. The modules that run
    models ask for it (`pytestmark`); the rest (readers, tokenizer, reference, cells, settings) never
    build it. With a C++ compiler the build must work (a failure is a bug);
    without one (or REVIEWLSTM_KERNEL=off) the Python loop runs and the kernel's own tests say so."""
    from reviewlstm.nn.fourgate import compiled
    start = time.perf_counter()
    module = compiled.load() if compiled.enabled() else None
    line = f"reviewlstm kernel: {compiled.status()} in {time.perf_counter() - start:.1f} s"
    request.config.stash[KERNEL_LINE] = line
    return module


def pytest_terminal_summary(terminalreporter, config):
    if KERNEL_LINE in config.stash:
        terminalreporter.write_line(config.stash[KERNEL_LINE])


@pytest.fixture(scope="session")
def tiny_model(sst, tmp_path_factory, compiled_kernel):
    """A small real model: 400 SST-5 sentences, 2 epochs, hidden 16, GloVe; trained through the CLI.
    The recurrent path alone (--ngram-path off), so ONNX export takes it; tests/nn/test_ngrams.py trains
    and reads models with an n-gram path."""
    out = tmp_path_factory.mktemp("models") / "tiny"
    proc = run_cli("train", "--train", sst / "train.txt", "--dev", sst / "dev.txt", "--out", out,
                   "--max-examples", 400, "--no-phrases", "--epochs", 2, "--hidden", 16, "--seed", 1, "--no-progress",
                   "--ngram-path", "off")
    assert proc.returncode == 0, proc.stderr
    return out
