"""Every benchmark script's command line parses: `python bench/NAME.py --help` exits 0 and prints
its usage, so every command BENCHMARKS.md and bench/README.md quote can at least start. One
subprocess runs them all (torch imported once)."""
import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench"

DRIVER = r"""
import contextlib, io, json, runpy, sys
sys.path.insert(0, sys.argv[1])
out = {}
for path in sys.argv[2:]:
    sys.argv = [path, "--help"]
    buf = io.StringIO()
    try:
        with contextlib.redirect_stdout(buf):
            runpy.run_path(path, run_name="__main__")
        out[path] = ["returned without exiting", buf.getvalue()]
    except SystemExit as e:
        out[path] = [e.code, buf.getvalue()]
    except BaseException as e:
        out[path] = [f"{type(e).__name__}: {e}", buf.getvalue()]
print(json.dumps(out))
"""


def test_every_bench_script_answers_help():
    scripts = sorted(str(p) for p in BENCH.glob("*.py") if p.name != "common.py")
    assert len(scripts) > 30
    done = subprocess.run([sys.executable, "-c", DRIVER, str(BENCH), *scripts], capture_output=True, text=True,
                          timeout=600, cwd=BENCH.parent)
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads(done.stdout.strip().splitlines()[-1])
    failed = {Path(p).name: code for p, (code, _) in results.items() if code not in (0, None)}
    assert not failed, failed
    assert all("usage:" in text for _, text in results.values()), \
        [Path(p).name for p, (_, text) in results.items() if "usage:" not in text]


def test_the_bench_readme_lists_every_script_and_only_scripts_that_exist():
    import re
    listed = set(re.findall(r"bench/(\w+\.py)", (BENCH / "README.md").read_text()))
    present = {p.name for p in BENCH.glob("*.py")} - {"common.py"}
    assert listed - {"common.py"} == present
