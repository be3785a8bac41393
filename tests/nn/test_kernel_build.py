"""A build of the compiled kernel never blocks a later run: a build that was killed leaves nothing
that makes the next one wait, and a build still running is waited for only so long, after which the
Python loop runs and says so."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from support import run_cli
from reviewlstm.nn.fourgate import compiled


@pytest.fixture
def half_built_cache(compiled_kernel, tmp_path):
    """A kernel cache as a killed build leaves it: compiled objects, no module, torch's bare lock
    file. Linking is all that is left to do, so the test costs seconds, not a compile."""
    if compiled_kernel is None:
        pytest.skip(f"no compiled kernel here: {compiled.status()}")
    cache = tmp_path / "cache"
    src = compiled.cache_dir()
    dst = cache / src.relative_to(compiled.settings.cache_root())
    shutil.copytree(src, dst)
    for so in dst.glob("*/*.so"):
        so.unlink()
    builds = [p for p in dst.iterdir() if (p / "build.ninja").exists()]
    assert builds
    for build in builds:
        (build / "lock").write_text("")  # fresh, as a build killed a moment ago leaves it
    # the build this source makes first (a cache may also hold builds of older sources)
    current = dst / compiled._name(*compiled.BUILDS[0])
    return cache, current if current in builds else builds[0]


def _env(cache, **extra):
    return {**os.environ, "REVIEWLSTM_CACHE": str(cache), **extra}


def test_a_killed_build_does_not_make_the_next_wait(half_built_cache):
    cache, build = half_built_cache
    proc = run_cli("build-kernel", env=_env(cache), timeout=240)
    assert proc.returncode == 0, proc.stderr
    assert "fast LSTM kernel: compiled now" in proc.stdout and "left by a build of the kernel that was stopped" in proc.stderr
    assert list(build.glob("*.so")) and not (build / "lock").exists()
    again = run_cli("build-kernel", env=_env(cache), timeout=240)  # cached: says so, not "compiled"
    assert again.returncode == 0 and "fast LSTM kernel: already built" in again.stdout, again.stderr


def test_a_build_still_running_is_waited_for_then_the_python_loop_runs(half_built_cache, tiny_model, tmp_path):
    cache, build = half_built_cache
    holder = subprocess.Popen([sys.executable, "-c", "import fcntl, os, sys, time\n"
                               f"fd = os.open({str(build / 'reviewlstm.lock')!r}, os.O_RDWR | os.O_CREAT)\n"
                               "fcntl.flock(fd, fcntl.LOCK_EX); print('held', flush=True); time.sleep(600)"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        src = tmp_path / "in.csv"
        src.write_text("text\ngood\nbad\n")
        proc = run_cli("predict", "--model", tiny_model, "--input", src, "--output", tmp_path / "o.csv", "--no-progress",
                       env=_env(cache, REVIEWLSTM_KERNEL_WAIT="2", REVIEWLSTM_BUILD_ROWS="0"), timeout=240)
        assert proc.returncode == 0, proc.stderr
        assert "waiting for another process's build" in proc.stderr and "using the Python loop" in proc.stderr
        assert len((tmp_path / "o.csv").read_text().splitlines()) == 3
    finally:
        holder.kill()  # kill -9: its lock goes with it
        holder.wait()
    proc = run_cli("build-kernel", env=_env(cache, REVIEWLSTM_KERNEL_WAIT="2"), timeout=240)
    assert proc.returncode == 0 and "compiled" in proc.stdout, proc.stderr
