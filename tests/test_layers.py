"""The package's layering (pyproject.toml's [tool.importlinter]): surfaces -> facade -> jobs -> model
-> recurrent -> fast path, text and data below, the NumPy reference apart. A module placed in no
layer, or an import that runs upward (a circle through the facade), fails here; so does a name
pyflakes finds undefined or unused anywhere in the package, the benchmarks or the tests."""
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_imports_run_one_way_down_the_layers():
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
    assert lint, "lint-imports (import-linter) is a test dependency"
    run = subprocess.run([lint, "--config", str(ROOT / "pyproject.toml"), "--no-cache"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert "3 kept, 0 broken" in run.stdout


def test_no_undefined_or_unused_names():
    # a benchmark is run by hand, months apart: an undefined name there fails only when someone runs it
    run = subprocess.run([sys.executable, "-m", "pyflakes", "src", "bench", "tests"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
