"""Rebuild the SST-5 sample under tests/data/sst5/ from the full treebank files.

    python tests/data/make_sst5_sample.py ../shared/data/sst5

Takes every k-th tree (evenly spread over each file, so every label and length appears), plus train
line 4342, whose leaf `8 1\\/2` holds a space (the quirk a reader must survive), and writes the
lines unchanged. The sample's checksums go in tests/data/sst5/README.md.
"""
import hashlib
import sys
from pathlib import Path

SIZES = {"train.txt": 480, "dev.txt": 220}
KEEP = {"train.txt": [4342]}  # 1-based lines of the full file that must be in the sample

src = Path(sys.argv[1])
out = Path(__file__).resolve().parent / "sst5"
for name, size in SIZES.items():
    lines = (src / name).read_text(encoding="utf-8").splitlines(keepends=True)
    step = len(lines) / size
    picked = sorted({int(i * step) for i in range(size)} | {n - 1 for n in KEEP.get(name, [])})
    text = "".join(lines[i] for i in picked)
    (out / name).write_text(text, encoding="utf-8")
    print(name, len(picked), "trees, sha256", hashlib.sha256(text.encode()).hexdigest(),
          "source lines", ",".join(str(i + 1) for i in picked[:3]), "...")
