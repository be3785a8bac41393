"""Two versions of the code, one model, the same predictions? (Behaviour kept across a refactor.)

    git archive <old commit> | tar -x -C /tmp/old
    python bench/same_predictions.py --old-src /tmp/old/src

Each version rates every SST-5 dev sentence with the same model directory (default: the bundled
model of this tree), in a process of its own (PYTHONPATH set to its src/); prints how many ratings
differ and the largest difference of any probability.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CHILD = """
import json, sys
import numpy as np
from reviewlstm import api
from reviewlstm.io import data
model = api.load_model(sys.argv[1])
texts = [ex.text for ex in data.read_examples(sys.argv[2])]
preds = api.predict(texts, model=model)
np.save(sys.argv[3], np.array([p.probabilities for p in preds]))
print(json.dumps({"ratings": [p.rating for p in preds], "module": api.__file__}))
"""


def run(src: Path, model: Path, data: Path, out: Path) -> dict:
    env = dict(os.environ, PYTHONPATH=str(src))
    proc = subprocess.run([sys.executable, "-c", CHILD, str(model), str(data), str(out)], env=env,
                          capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--old-src", type=Path, required=True)
    ap.add_argument("--model", type=Path, default=ROOT / "src" / "reviewlstm" / "default_model")
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "sst5" / "dev.txt")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        old = run(args.old_src, args.model, args.data, Path(tmp) / "old.npy")
        new = run(ROOT / "src", args.model, args.data, Path(tmp) / "new.npy")
        p_old, p_new = np.load(Path(tmp) / "old.npy"), np.load(Path(tmp) / "new.npy")
    assert old["module"] != new["module"], "both runs imported the same code"
    differ = sum(a != b for a, b in zip(old["ratings"], new["ratings"]))
    print(f"{len(p_old)} texts, {args.model}: ratings that differ {differ}, "
          f"largest probability difference {np.abs(p_old - p_new).max():.2e}")
    print(f"  old: {old['module']}\n  new: {new['module']}")


if __name__ == "__main__":
    main()
