"""Two versions of the code, the same speed? bench/bench_cells.py of each, interleaved, ratios compared.

    git archive <old commit> | tar -x -C /tmp/old
    python bench/refactor_speed.py --old /tmp/old [--rounds 2] [--repeats 10]

Each round runs the old tree's bench/bench_cells.py (with its src/ on PYTHONPATH) and then this
tree's, in fresh processes, one after the other; every figure compared is a ratio to torch.nn.LSTM
measured in the same process, so the machine's drift between runs cancels. Prints, per shape and fast
implementation, the median over rounds of each version's fwd+bwd and fwd-only ratios and new / old.
"""
from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ROW = re.compile(r"^\| (four-gate \((?:compiled|Python loop)\)) \| [\d.]+ \| ([\d.]+)x \| [\d.]+ \| ([\d.]+)x \|")


def run(tree: Path, repeats: int) -> dict:
    env = dict(os.environ, PYTHONPATH=str(tree / "src"))
    out = subprocess.run([sys.executable, str(tree / "bench" / "bench_cells.py"), "--repeats", str(repeats)],
                         env=env, capture_output=True, text=True, check=True).stdout
    ratios, shape = {}, None
    for line in out.splitlines():
        if line.startswith("**B="):
            shape = line.strip("*")
        m = ROW.match(line)
        if m and shape:
            ratios[(shape, m[1])] = (float(m[2]), float(m[3]))
    return ratios


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--old", type=Path, required=True, help="a checkout of the old version")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=10)
    args = ap.parse_args()
    runs = {"old": [], "new": []}
    for r in range(args.rounds):
        for name, tree in (("old", args.old), ("new", ROOT)):
            runs[name].append(run(tree, args.repeats))
            print(f"round {r + 1}: {name} done", file=sys.stderr, flush=True)
    print("| shape | implementation | old fwd+bwd x nn.LSTM (each round) | new | new / old | "
          "old fwd-only x nn.LSTM (each round) | new | new / old |")
    print("|---|---|---|---|---|---|---|---|")

    def each(name, key, i):
        return "/".join(f"{r[key][i]:.2f}" for r in runs[name])

    for key in runs["new"][0]:
        old = [statistics.median(r[key][i] for r in runs["old"]) for i in (0, 1)]
        new = [statistics.median(r[key][i] for r in runs["new"]) for i in (0, 1)]
        print(f"| {key[0]} | {key[1]} | {old[0]:.2f} ({each('old', key, 0)}) | {new[0]:.2f} ({each('new', key, 0)}) | "
              f"{new[0] / old[0]:.3f} | {old[1]:.2f} ({each('old', key, 1)}) | {new[1]:.2f} ({each('new', key, 1)}) | "
              f"{new[1] / old[1]:.3f} |")
    print(f"\n{args.rounds} rounds of bench_cells.py --repeats {args.repeats} per version, interleaved; "
          "medians over rounds of ratios to torch.nn.LSTM measured in the same process")


if __name__ == "__main__":
    main()
