"""Gather every `bench/quality.py` result into one table: mean ± sd over seeds per config.

    python bench/quality_table.py [--runs runs/quality]

quality.py writes one JSON per invocation (a config and its seeds); runs of the same config made in
separate invocations (e.g. seeds 0,1 one day and seed 2 the next) are merged here by seed.
"""
from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from quality import CONFIGS

LABELS = {
    "default": "four-gate LSTM, bidirectional, phrases, GloVe (the default recipe)",
    "default-eval2": "the same, dev checked 2x an epoch instead of 4x",
    "lstm-uni": "four-gate LSTM, one direction, phrases, GloVe",
    "lstm-sentences": "four-gate LSTM, bidirectional, sentences only (15 epochs), GloVe",
    "lstm-random": "four-gate LSTM, bidirectional, phrases, random init",
    "classic-bi": "classic LSTM, bidirectional, phrases, GloVe",
    "classic-uni": "classic LSTM, one direction, phrases, GloVe",
    "rnn-bi": "RNN, bidirectional, phrases, GloVe",
    "rnn-uni": "RNN, one direction, phrases, GloVe",
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", default="runs/quality")
    args = ap.parse_args()
    runs: dict[str, dict[int, dict]] = {}
    for path in sorted(Path(args.runs).glob("quality-*.json")):
        for name, result in json.loads(path.read_text()).items():
            for row in result["runs"]:
                runs.setdefault(name, {})[row["seed"]] = row
    sd = lambda xs: statistics.stdev(xs) if len(xs) > 1 else 0.0  # noqa: E731
    print("| model | dev accuracy, mean ± sd (per seed) | dev MAE, mean ± sd | seeds | training wall time | "
          "prediction, dev sentences/s |")
    print("|---|---|---|---|---|---|")
    for name in [n for n in CONFIGS if n in runs]:
        rows = [runs[name][s] for s in sorted(runs[name])]
        acc = [r["accuracy"] for r in rows]
        mae = [r["mae"] for r in rows]
        secs = [r["train_seconds"] for r in rows]
        rate = [r["sentences_per_second"] for r in rows]
        print(f"| {LABELS.get(name, name)} | {statistics.mean(acc):.1%} ± {sd(acc):.1%} "
              f"({', '.join(f'{a:.1%}' for a in acc)}) | {statistics.mean(mae):.3f} ± {sd(mae):.3f} | "
              f"{', '.join(str(r['seed']) for r in rows)} | {min(secs):,.0f}–{max(secs):,.0f} s | "
              f"{min(rate):,.0f}–{max(rate):,.0f} |")


if __name__ == "__main__":
    main()
