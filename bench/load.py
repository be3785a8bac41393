"""Load test of the REST service on loopback: N concurrent clients, a few thousand requests, latency percentiles.

    python bench/load.py [--model DIR] [--clients 50] [--requests 3000] [--endpoint predict]
    python bench/load.py --mixed [--clients 50] [--explainers 45]   # /predict and /explain together

Starts `reviewlstm serve` on a free 127.0.0.1 port, sends SST-5 dev sentences from --clients threads
(each its own keep-alive connection), checks every answer against the one its text gets alone
(no cross-talk), and prints throughput and p50/p90/p99/max latency. Bounded in count and time.
--mixed: the same /predict clients while --explainers threads send long /explain requests
(5,000 characters, the service's limit) back to back, and one more thread polls /health: its
latency beside the error counts (503s from the bounded explain queue are counted apart).
"""
from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from reviewlstm.io.data import read_examples

from common import sst_arg


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=None)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--requests", type=int, default=3000)
    ap.add_argument("--endpoint", choices=("predict", "explain"), default="predict")
    sst_arg(ap)
    ap.add_argument("--max-seconds", type=float, default=600)
    ap.add_argument("--mixed", action="store_true")
    ap.add_argument("--explainers", type=int, default=45)
    args = ap.parse_args()
    if args.mixed:
        args.endpoint = "predict"
    texts = [e.text for e in read_examples(Path(args.sst) / "dev.txt")]
    port = free_port()
    cmd = [sys.executable, "-m", "reviewlstm.apps.cli", "serve", "--port", str(port)] + (["--model", args.model] if args.model else [])
    server = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(url + "/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        unique = texts[: min(len(texts), 500)]
        alone = {t: httpx.post(f"{url}/{args.endpoint}", json={"text": t}, timeout=60).json()["rating"] for t in unique}
        per_client = args.requests // args.clients
        deadline = time.time() + args.max_seconds

        def client(i):
            lat, bad = [], 0
            with httpx.Client(base_url=url, timeout=60) as c:
                for k in range(per_client):
                    if time.time() > deadline:
                        break
                    t = unique[(i * per_client + k) % len(unique)]
                    t0 = time.perf_counter()
                    r = c.post(f"/{args.endpoint}", json={"text": t})
                    lat.append(time.perf_counter() - t0)
                    if r.status_code != 200 or r.json()["rating"] != alone[t]:
                        bad += 1
            return lat, bad

        stop = {"now": False}
        long_text = (" ".join(texts))[:5000]

        def explainer(i):
            counts = {"ok": 0, "busy": 0, "error": 0}
            with httpx.Client(base_url=url, timeout=300) as c:
                while not stop["now"] and time.time() < deadline:
                    r = c.post("/explain", json={"text": long_text})
                    key = "ok" if r.status_code == 200 else "busy" if r.status_code == 503 else "error"
                    counts[key] += 1
                    if key == "busy":
                        time.sleep(float(r.headers.get("retry-after", 1)) / 10)
            return counts

        def health():
            lat = []
            with httpx.Client(base_url=url, timeout=60) as c:
                while not stop["now"] and time.time() < deadline:
                    t0 = time.perf_counter()
                    ok = c.get("/health").status_code == 200 and c.get("/ready").status_code == 200
                    lat.append((time.perf_counter() - t0) / 2 if ok else float("inf"))
                    time.sleep(0.05)
            return lat

        t0 = time.perf_counter()
        with ThreadPoolExecutor(args.clients + (args.explainers + 1 if args.mixed else 0)) as pool:
            side = [pool.submit(explainer, i) for i in range(args.explainers)] + [pool.submit(health)] \
                if args.mixed else []
            if args.mixed:
                time.sleep(2.0)  # the explain queue full before /predict starts
            results = list(pool.map(client, range(args.clients)))
            stop["now"] = True
            side = [f.result() for f in side]
        wall = time.perf_counter() - t0
        if args.mixed:
            counts = {k: sum(c[k] for c in side[:-1]) for k in ("ok", "busy", "error")}
            hl = sorted(side[-1])
            hq = lambda p: hl[min(len(hl) - 1, int(p * len(hl)))] * 1000  # noqa: E731
            print(f"/explain from {args.explainers} threads: {counts['ok']} answered, {counts['busy']} told 503 "
                  f"(queue full, Retry-After), {counts['error']} errors")
            print(f"/health + /ready while explain is saturated: {len(hl)} polls, p50 {hq(0.5):.1f} ms, "
                  f"p99 {hq(0.99):.1f} ms, max {hl[-1] * 1000:.1f} ms")
        lat = sorted(x for r, _ in results for x in r)
        bad = sum(b for _, b in results)
        q = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] * 1000  # noqa: E731
        print(f"{len(lat)} requests to /{args.endpoint} from {args.clients} clients in {wall:.1f}s: "
              f"{len(lat) / wall:.0f} req/s, errors or wrong answers {bad}")
        print(f"| /{args.endpoint} | {args.clients} | {len(lat)} | {len(lat) / wall:.0f} | {q(0.5):.1f} | {q(0.9):.1f} | "
              f"{q(0.99):.1f} | {lat[-1] * 1000:.1f} | {bad} |")
        print(f"mean {statistics.mean(lat) * 1000:.1f} ms")
    finally:
        server.terminate()
        server.wait(10)


if __name__ == "__main__":
    main()
