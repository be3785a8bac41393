"""Record what a model saved by an earlier version predicts, so later code can be held to it.

    python tests/data/make_legacy_predictions.py tests/data/legacy_model > tests/data/legacy_predictions.json

Run once with the version that wrote the model (the commit is in the output); tests/inference/test_legacy.py
loads the same directory with today's code and asks for the same ratings and probabilities. The
texts: the SST-5 sample's dev sentences as plain text, and a few long multi-sentence reviews (read
sentence by sentence, as that model was trained); four of them explained.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from reviewlstm import api as rl
from reviewlstm.io import data

HERE = Path(__file__).parent
LONG = [
    "The food was good. Service was slow! " * 12 + "We will not be back, sadly.",
    "Brilliant. I cried twice. " * 20 + "A film about grief that never once feels false.",
    ("It starts well, with a sharp first act and a cast that clearly enjoys itself, but the middle drags "
     "and the ending is a mess. ") * 6,
]


def _explanation(e) -> dict:
    return {"text": e.text, "rating": e.rating, "probabilities": e.probabilities,
            "contributions": e.contributions, "trajectory": e.trajectory,
            "gates": {name: g["mean"] for name, g in e.gates.items()}}


def main(model_dir: str) -> None:
    model = rl.load_model(model_dir)
    texts = [ex.text for ex in data.read_examples(HERE / "sst5" / "dev.txt")] + LONG
    predictions = rl.predict(texts, model=model)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=HERE).stdout.strip()
    json.dump({"written_by": commit, "model": Path(model_dir).name,
               "predictions": [{"text": t, "rating": p.rating, "probabilities": p.probabilities,
                                "expected_rating": p.expected_rating, "read_as": p.read_as}
                               for t, p in zip(texts, predictions)],
               "explanations": [_explanation(rl.explain(t, model=model)) for t in texts[:3] + LONG[:1]]},
              sys.stdout, indent=0)
    print()


if __name__ == "__main__":
    main(sys.argv[1])
