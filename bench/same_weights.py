"""The same training, two revisions: tiny CLI runs trained by this tree and by an earlier revision's
source, their saved weights compared bit for bit (a restructuring must leave what is learned alone).

    python bench/same_weights.py --against d5f46a6 [--sst ../shared/data/sst5] [--examples 1500]

Three runs on each side, SST-5 sentences, hidden 32, seed 3, one thread: plain (2 epochs),
`--average-best 2`, and stopped after epoch 1 then `--resume --epochs 2`. The earlier revision is
unpacked with `git archive` into a temporary directory; each run is a fresh process with that tree on
PYTHONPATH. Printed per run: bit-identical or not, and each side's best epoch, n-gram share,
temperature and slice accuracy as its metadata records them.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def unpack(rev: str, into: Path) -> Path:
    archive = subprocess.run(["git", "archive", "--format=tar", rev, "src"], cwd=ROOT, capture_output=True, check=True)
    into.mkdir(parents=True, exist_ok=True)
    tar = into / "src.tar"
    tar.write_bytes(archive.stdout)
    with tarfile.open(tar) as t:
        t.extractall(into, filter="data")
    return into / "src"


def train(src: Path, out: Path, sst: Path, examples: int, *extra) -> None:
    env = {**os.environ, "PYTHONPATH": str(src)}
    args = ["--train", str(sst / "train.txt"), "--dev", str(sst / "dev.txt"), "--max-examples", str(examples),
            "--no-phrases", "--hidden", "32", "--no-progress", "--threads", "1", "--seed", "3", "--out", str(out)]
    done = subprocess.run([sys.executable, "-m", "reviewlstm", "train", *args, *extra], env=env, capture_output=True,
                          text=True)
    if done.returncode:
        raise SystemExit(f"{src}: train failed: {done.stderr.strip().splitlines()[-1]}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--against", required=True, help="the earlier revision (a commit, tag or branch)")
    ap.add_argument("--sst", default=str(ROOT.parent / "shared" / "data" / "sst5"))
    ap.add_argument("--examples", type=int, default=1500)
    args = ap.parse_args()
    from safetensors.torch import load_file
    runs = {"plain": [["--epochs", "2"]], "average-best": [["--epochs", "2", "--average-best", "2"]],
            "stopped and resumed": [["--epochs", "1"], ["--epochs", "2", "--resume"]]}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        trees = {"this tree": ROOT / "src", args.against: unpack(args.against, tmp / "old")}
        print(f"| run | weights | {' | '.join(trees)} (best epoch, n-gram share, temperature, slice accuracy) |")
        print("|---|---|" + "---|" * len(trees))
        for name, steps in runs.items():
            weights, meta = {}, {}
            for side, src in trees.items():
                out = tmp / f"{name.replace(' ', '-')}-{len(weights)}"
                for extra in steps:
                    train(src, out, Path(args.sst), args.examples, *extra)
                weights[side] = load_file(str(out / "model.safetensors"))
                m = json.loads((out / "metadata.json").read_text())
                meta[side] = (m.get("best_epoch"), (m.get("ngram_path") or {}).get("share"),
                              (m.get("calibration") or {}).get("temperature"), round(m["holdout_metrics"]["accuracy"], 4))
            a, b = weights.values()
            same = a.keys() == b.keys() and all(bool((a[k] == b[k]).all()) for k in a)
            print(f"| {name} | {'bit-identical' if same else 'DIFFERENT'} | " + " | ".join(map(str, meta.values())) + " |",
                  flush=True)


if __name__ == "__main__":
    main()
