"""Helpers the tests share (not tests): a CLI run in a fresh process, a real server on 127.0.0.1, a
reviews CSV."""
import csv
import socket
import subprocess
import sys
import time

import httpx


def run_cli(*args, input=None, timeout=600, env=None):
    """Run `reviewlstm ARGS` as a user would, in a fresh process."""
    return subprocess.run([sys.executable, "-m", "reviewlstm.apps.cli", *map(str, args)], capture_output=True, text=True,
                          input=input, timeout=timeout, env=env)


def write_csv(path, rows):
    """(text, stars) rows as a CSV file with a header; returns the path."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["text", "stars"])
        w.writerows(rows)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(model, *extra):
    """`reviewlstm serve --model MODEL EXTRA...` on a free port; (process, url) once /ready says yes."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "reviewlstm.apps.cli", "serve", "--model", str(model), "--port", str(port),
                             *map(str, extra)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if httpx.get(url + "/ready", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise RuntimeError(proc.stdout.read())
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError("server did not become ready")
