"""The package's import contracts (pyproject.toml's [tool.importlinter]): the folders in layers
(apps -> api -> distillation -> training -> inference -> nn -> io -> settings), the modules of each
folder in layers, the NumPy reference apart. A module placed in no layer, or an import that runs
upward (a circle through the facade), fails here; so does a name pyflakes finds undefined or unused
anywhere in the package, the benchmarks or the tests; and the import paths of earlier releases
still lead to the same objects."""
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
    assert "9 kept, 0 broken" in run.stdout


def test_no_undefined_or_unused_names():
    # a benchmark is run by hand, months apart: an undefined name there fails only when someone runs it
    run = subprocess.run([sys.executable, "-m", "pyflakes", "src", "bench", "tests"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]


def test_the_import_paths_of_earlier_releases_lead_to_the_same_objects():
    import reviewlstm.cells
    import reviewlstm.layers
    from reviewlstm.cells import LSTMCell
    from reviewlstm.layers import Recurrent
    from reviewlstm.nn import cells, layers
    assert LSTMCell is cells.LSTMCell and Recurrent is layers.Recurrent
    assert reviewlstm.cells is cells and reviewlstm.layers is layers


def test_no_command_but_serve_imports_the_web_stack():
    """Building the command line (every command's --help) and a predict imports neither FastAPI,
    uvicorn nor the service: they are `serve`'s alone."""
    probe = ("import sys\n"
             "from reviewlstm.apps import cli\n"
             "cli.build_parser()\n"
             "try:\n"
             "    cli.main(['predict', 'a fine film'])\n"
             "except SystemExit:\n"
             "    pass\n"
             "print(sorted(m for m in sys.modules if m.split('.')[0] in ('fastapi', 'uvicorn', 'starlette')\n"
             "             or m.startswith('reviewlstm.apps.service')))\n")
    assert _last_line_of(probe) == "[]"


def test_every_commands_help_is_built_without_torch():
    """The settings the flags are made of live in torch-free modules (nn/config.py,
    training/config.py, distillation/config.py, inference/config.py, apps/limits.py): `--help` of every
    command answers without importing torch, numpy's heavy users or the service."""
    probe = ("import contextlib, io, sys\n"
             "from reviewlstm.apps import cli\n"
             "parser = cli.build_parser()\n"
             "commands = [a for a in parser._subparsers._group_actions[0].choices]\n"
             "for argv in [['--help']] + [[c, '--help'] for c in commands]:\n"
             "    with contextlib.redirect_stdout(io.StringIO()):\n"
             "        try:\n"
             "            cli.main(argv)\n"
             "        except SystemExit:\n"
             "            pass\n"
             "print(len(commands), sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'fastapi', 'transformers')))\n")
    count, imported = _last_line_of(probe).split(" ", 1)
    assert int(count) >= 10 and imported == "[]"


def test_the_facade_keeps_every_public_name():
    """reviewlstm.api is the one facade: every name a user may have imported from it is still there."""
    from reviewlstm import api
    names = ["ArtifactError", "BadRows", "CALIBRATE_MIN", "Columns", "EXPLAIN_MAX_CHARS", "Explanation", "Kernel",
             "LoadedModel", "Prediction", "Predictor", "PretrainConfig", "PretrainResult", "ScoreSummary",
             "TrainConfig", "TrainResult", "calibrate", "default_model_path", "evaluate", "explain", "export",
             "load_model", "predict", "prediction_columns", "pretrain", "rate_rows", "read_examples", "score_file",
             "start_model_path", "text_problem", "train", "warm_up"]
    assert [n for n in names if not hasattr(api, n)] == []
    assert set(api.__all__) == set(names)


def _last_line_of(probe: str) -> str:
    """The last line a fresh Python process running `probe` prints (it must exit 0)."""
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert run.returncode == 0, run.stderr[-2000:]
    return run.stdout.strip().splitlines()[-1]
