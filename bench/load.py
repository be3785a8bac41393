"""Load test of the REST service on loopback: N concurrent clients, a few thousand requests, latency percentiles.

    python bench/load.py [--model DIR] [--clients 50] [--requests 3000] [--endpoint predict]

Starts `reviewlstm serve` on a free 127.0.0.1 port, sends SST-5 dev sentences from --clients threads
(each its own keep-alive connection), checks every answer against the one its text gets alone
(no cross-talk), and prints throughput and p50/p90/p99/max latency. Bounded in count and time.
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

from reviewlstm.data import read_examples


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
    ap.add_argument("--sst", default="../shared/data/sst5")
    ap.add_argument("--max-seconds", type=float, default=600)
    args = ap.parse_args()
    texts = [e.text for e in read_examples(Path(args.sst) / "dev.txt")]
    port = free_port()
    cmd = [sys.executable, "-m", "reviewlstm.cli", "serve", "--port", str(port)] + (["--model", args.model] if args.model else [])
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

        t0 = time.perf_counter()
        with ThreadPoolExecutor(args.clients) as pool:
            results = list(pool.map(client, range(args.clients)))
        wall = time.perf_counter() - t0
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
