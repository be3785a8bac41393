"""No client holds the service by being slow or many: a body trickled in is cut off, a slow head
on a kept-alive connection is closed like a slow first one, connections past a cap are answered 503
at once, and running out of file descriptors is logged once, not per attempt."""
from __future__ import annotations

import resource
import socket
import subprocess
import sys
import time

import httpx
import pytest

from support import free_port, start_server

pytestmark = pytest.mark.usefixtures("compiled_kernel")  # runs models: the compiled loop built first


def _closed_within(sock: socket.socket, seconds: float, trickle: bytes = b"") -> tuple[bool, bytes]:
    """Send `trickle` a byte every 0.3 s (or just wait); True once the server has closed the socket."""
    sock.settimeout(0.3)
    got, deadline, k = b"", time.time() + seconds, 0
    while time.time() < deadline:
        if k < len(trickle):
            try:
                sock.sendall(trickle[k:k + 1])
            except OSError:
                return True, got
            k += 1
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            continue
        except OSError:
            return True, got
        if not chunk:
            return True, got
        got += chunk
    return False, got


@pytest.fixture(scope="module")
def guarded(tiny_model):
    """One server with short limits: a body within 2 s, every request head within 2 s, 5 connections."""
    proc, url = start_server(tiny_model, "--body-timeout", 2, "--header-timeout", 2, "--max-connections", 5)
    yield url, int(url.rsplit(":", 1)[1])
    proc.terminate()
    proc.wait(10)


def test_a_trickled_body_is_cut_off(guarded):
    url, port = guarded
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"POST /predict HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 200\r\n\r\n")
        closed, got = _closed_within(sock, 8, trickle=b'{"text": "' + b"a" * 100)
    assert closed and b" 408 " in got and b"body_timeout" in got
    assert httpx.get(url + "/health", timeout=5).status_code == 200


def test_a_slow_head_on_a_kept_alive_connection_is_closed(guarded):
    _, port = guarded
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n")
        time.sleep(0.5)
        assert b"200 OK" in sock.recv(65536)
        closed, _ = _closed_within(sock, 8, trickle=b"GET /health HTTP/1.1\r\nhost: x\r\nx-slow: " + b"y" * 40)
    assert closed


def test_connections_past_the_cap_are_answered_503_at_once(guarded):
    url, port = guarded
    time.sleep(0.5)  # the other tests' connections are closed
    socks = []
    try:
        for _ in range(12):
            socks.append(socket.create_connection(("127.0.0.1", port)))
        time.sleep(0.5)
        refused = 0
        for sock in socks:
            sock.settimeout(0.5)
            try:
                data = sock.recv(65536)
            except socket.timeout:
                continue
            refused += b" 503 " in data and b"max_connections" in data
        assert refused == 7
    finally:
        for sock in socks:
            sock.close()
    time.sleep(0.5)
    assert httpx.get(url + "/health", timeout=5).status_code == 200


def test_running_out_of_files_is_logged_once_and_the_service_recovers(tiny_model, tmp_path):
    port = free_port()
    log = tmp_path / "serve.log"

    def few_files():
        resource.setrlimit(resource.RLIMIT_NOFILE, (60, 60))

    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "reviewlstm.apps.cli", "serve", "--model", str(tiny_model), "--port",
                                 str(port), "--max-connections", "1000", "--header-timeout", "1"],
                                stdout=out, stderr=subprocess.STDOUT, preexec_fn=few_files)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                if httpx.get(url + "/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        socks = []
        for _ in range(80):
            try:
                socks.append(socket.create_connection(("127.0.0.1", port), timeout=1))
            except OSError:
                break
        time.sleep(2)
        for sock in socks:
            sock.close()
        time.sleep(2)  # the slow sockets are closed by the head timeout; accepting resumes
        assert httpx.get(url + "/health", timeout=5).status_code == 200
    finally:
        proc.terminate()
        proc.wait(10)
    text = log.read_text()
    assert text.count("cannot accept connections") == 1, text[-2000:]
    assert "Traceback" not in text and len(text) < 20_000
