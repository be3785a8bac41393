"""The tokenizer on real reviews: GloVe coverage and glued words, this revision against another.

    python bench/tokenizer.py [--amazon ../shared/data/amazon-musical] [--sst ../shared/data/sst5]
                              [--against OLD_TEXT_PY]

For the Amazon reviews (train + dev): the share of tokens and of distinct words that GloVe 6B
knows (lower-cased, as the models read them), the share of tokens that are a word glued to a
sentence's end (`good.`, `great!`), and tokens/s. For SST-5 dev: the share of sentences whose
detokenized text tokenizes back to SST's own tokens. `--against` loads another revision's
text.py (e.g. `git show HEAD~1:src/reviewlstm/io/text.py > /tmp/old_text.py`) and measures it beside.
"""
from __future__ import annotations

import argparse
import csv
import importlib.util
import re
import time
from collections import Counter
from pathlib import Path

from reviewlstm.io import text as current
from reviewlstm.io.data import read_examples
from reviewlstm.nn.embeddings import GloVe

from common import sst_arg

GLUED = re.compile(r"^[A-Za-z]{2,}[.!?]+$")


def load_module(path: str):
    spec = importlib.util.spec_from_file_location("other_text", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def measure(tokenize, texts, sst_sentences, glove):
    start = time.perf_counter()
    token_lists = [tokenize(t, lowercase=True) for t in texts]
    seconds = time.perf_counter() - start
    counts = Counter(t for toks in token_lists for t in toks)
    n = sum(counts.values())
    known = sum(c for t, c in counts.items() if glove.lookup(t) is not None)
    glued = sum(c for t, c in counts.items() if GLUED.match(t) and t not in current.ABBREVIATIONS)
    words_known = sum(glove.lookup(t) is not None for t in counts)
    sst_same = sum(tokenize(" ".join(s)) == [w.replace("\\/", "/").replace("\\*", "*") for w in s]
                   for s in sst_sentences)
    return {"tokens": n, "token_coverage": known / n, "distinct": len(counts), "word_coverage": words_known / len(counts),
            "glued": glued / n, "tokens_per_s": n / seconds, "sst_roundtrip": sst_same / len(sst_sentences)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--amazon", default="../shared/data/amazon-musical")
    sst_arg(ap)
    ap.add_argument("--against", help="another revision's text.py to measure beside this one")
    args = ap.parse_args()
    texts = []
    for name in ("train.csv", "dev.csv"):
        with open(Path(args.amazon) / name, newline="", encoding="utf-8") as f:
            texts += [row["text"] for row in csv.DictReader(f)]
    sst_sentences = [e.tokens for e in read_examples(Path(args.sst) / "dev.txt")]
    glove = GloVe.load()
    rows = [("this revision", measure(current.tokenize, texts, sst_sentences, glove))]
    if args.against:
        rows.append((args.against, measure(load_module(args.against).tokenize, texts, sst_sentences, glove)))
    print(f"{len(texts)} Amazon reviews, {len(sst_sentences)} SST-5 dev sentences")
    print("| tokenizer | tokens | GloVe token coverage | distinct words | GloVe word coverage | glued to . ! ? "
          "| tokens/s | SST dev round trip |")
    print("|---|---|---|---|---|---|---|---|")
    for name, r in rows:
        print(f"| {name} | {r['tokens']:,} | {r['token_coverage']:.2%} | {r['distinct']:,} | {r['word_coverage']:.2%} "
              f"| {r['glued']:.2%} | {r['tokens_per_s']:,.0f} | {r['sst_roundtrip']:.2%} |")


if __name__ == "__main__":
    main()
