"""A command's own cost: the wall time of `reviewlstm --help` and of one `reviewlstm predict TEXT`
with the bundled model, each in a fresh process, beside `python -c "import torch"` (the floor a
command that rates anything pays), interleaved, medians of N rounds.

    python bench/command_cost.py [--rounds 7]
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

COMMANDS = {
    "reviewlstm --help": [sys.executable, "-m", "reviewlstm", "--help"],
    "reviewlstm predict TEXT (bundled model)": [sys.executable, "-m", "reviewlstm", "predict",
                                                "a gorgeous, witty, seductive movie."],
    "python -c 'import torch'": [sys.executable, "-c", "import torch"],
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    for cmd in COMMANDS.values():  # warm the file cache and the kernel cache once
        subprocess.run(cmd, capture_output=True, check=True)
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for _ in range(args.rounds):
        for name, cmd in COMMANDS.items():
            start = time.perf_counter()
            subprocess.run(cmd, capture_output=True, check=True)
            times[name].append(time.perf_counter() - start)
    print("| command | median s | min s | max s |")
    print("|---|---|---|---|")
    for name, t in times.items():
        print(f"| {name} | {statistics.median(t):.2f} | {min(t):.2f} | {max(t):.2f} |")


if __name__ == "__main__":
    main()
