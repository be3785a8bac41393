"""Readers, tokenizer, vocabulary and the SST-5 download, on real files."""
import gzip
import hashlib
import io
import json
import zipfile
from collections import Counter

import pytest

from reviewlstm.io.data import BadRows, Columns, DataError, download_sst5, parse_tree, read_examples
from reviewlstm.io.text import Vocab, tokenize


def test_sst_sample_is_what_its_readme_says(sst):
    """tests/data/sst5 is checked byte for byte, so a changed sample fails here, not as shifted figures."""
    readme = (sst.parent / "README.md").read_text()
    for name in ("train.txt", "dev.txt"):
        assert hashlib.sha256((sst / name).read_bytes()).hexdigest() in readme, name
    train = list(read_examples(sst / "train.txt"))
    assert len(train) == 481
    assert Counter(e.rating for e in train) == {1: 59, 2: 124, 3: 87, 4: 141, 5: 70}
    assert len(list(read_examples(sst / "dev.txt"))) == 220
    assert len(list(read_examples(sst / "train.txt", phrases=True))) == 11603
    # a leaf with a space inside it (full train line 4342)
    assert "8\xa01\\/2" in [e for e in train if e.line == 245][0].tokens


def test_parse_tree_leaves_and_phrases():
    label, tokens, phrases = parse_tree("(3 (2 It) (4 (2 's) (3 (2 a) (4 lovely))))")
    assert label == 3 and tokens == ["It", "'s", "a", "lovely"]
    assert (4, ["lovely"]) in phrases and len(phrases) == 7
    with pytest.raises(ValueError):
        parse_tree("(3 (2 It) (4 lovely)")


def test_tokenizer_reads_raw_text_as_sst_does():
    assert tokenize("It's a gorgeous (if long) movie, isn't it?") == \
        ["It", "'s", "a", "gorgeous", "-LRB-", "if", "long", "-RRB-", "movie", ",", "is", "n't", "it", "?"]
    assert tokenize('He said "wow"... I cannot wait!', lowercase=True) == \
        ["he", "said", "``", "wow", "''", "...", "i", "can", "not", "wait", "!"]
    assert tokenize("-LRB- a -RRB-", lowercase=True) == ["-LRB-", "a", "-RRB-"]


@pytest.mark.parametrize("text,tokens", [
    # full stops inside a text: split off the word, as SST splits off a sentence's last one
    ("Brilliant. I cried twice.", ["Brilliant", ".", "I", "cried", "twice", "."]),
    ("The food was good. Service was slow!", ["The", "food", "was", "good", ".", "Service", "was", "slow", "!"]),
    ('He said "it is great." Then left.', ["He", "said", "``", "it", "is", "great", ".", "''", "Then", "left", "."]),
    ("(it was fine.) And so", ["-LRB-", "it", "was", "fine", ".", "-RRB-", "And", "so"]),
    # missing spaces after a sentence's end
    ("quite affordable.I did not know.As a bonus", ["quite", "affordable", ".", "I", "did", "not", "know", ".",
                                                  "As", "a", "bonus"]),
    ("it weighs 1.5 lbs.Not bad", ["it", "weighs", "1.5", "lbs", ".", "Not", "bad"]),
    ("I unboxed it.)I am not", ["I", "unboxed", "it", ".", "-RRB-", "I", "am", "not"]),
    ("wasted money.(but", ["wasted", "money", ".", "-LRB-", "but"]),
    ("paid $3.50.Great", ["paid", "$", "3.50", ".", "Great"]),
    ("good .the price", ["good", ".", "the", "price"]),
    # abbreviations and initials keep their full stop, as in SST (Mr., U.S., J.)
    ("Dr. Smith paid at 5 p.m. on Jan. 3. Great!", ["Dr.", "Smith", "paid", "at", "5", "p.m.", "on", "Jan.", "3", ".",
                                                   "Great", "!"]),
    ("I bought the U.S. version. It works.", ["I", "bought", "the", "U.S.", "version", ".", "It", "works", "."]),
    ("e.g. this, i.e. that, etc. and so did I. J. Smith too",
     ["e.g.", "this", ",", "i.e.", "that", ",", "etc.", "and", "so", "did", "I", ".", "J.", "Smith", "too"]),
    ("U.S.A and e.g.The", ["U.S.A", "and", "e.g.The"]),
    # numbers, URLs, e-mail addresses, emoticons, ellipses
    ("It costs 9.99, about 1,000 yen", ["It", "costs", "9.99", ",", "about", "1,000", "yen"]),
    ("See https://example.com/a.html?x=1. Or www.foo.org!", ["See", "https://example.com/a.html?x=1", ".", "Or",
                                                            "www.foo.org", "!"]),
    ("mail a.b@c.org: ok", ["mail", "a.b@c.org", ":", "ok"]),
    ("love it :) but :-( and ;) <3", ["love", "it", ":)", "but", ":-(", "and", ";)", "<3"]),
    ("Wait... what.. well......ok", ["Wait", "...", "what", "...", "well", "...", "ok"]),
    ("Wow!!! Really?!", ["Wow", "!", "!", "!", "Really", "?", "!"]),
    # HTML that real exports carry
    ("Great strings &amp; a nice tone.<br /><br />Would buy again.", ["Great", "strings", "&", "a", "nice", "tone",
                                                                     ".", "Would", "buy", "again", "."]),
    ("it&#39;s <b>fine</b>", ["it", "'s", "fine"]),
])
def test_tokenizer_reads_real_reviews(text, tokens):
    assert tokenize(text) == tokens


def test_tokenizer_leaves_sst_tokens_as_they_are(sst):
    sentences = [e.tokens for e in read_examples(sst / "dev.txt")]
    same = sum(tokenize(" ".join(t)) == [w.replace("\\/", "/").replace("\\*", "*") for w in t] for t in sentences)
    assert same / len(sentences) > 0.97, same


def _tokenize_every_rule(text):
    """The PTB rules run unconditionally, in order: what the tokenizer's guarded version must equal."""
    from reviewlstm.io import text as T
    text = " " + text.strip() + " "
    for regex, sub in T._STARTING_QUOTES + T._PUNCTUATION:
        text = regex.sub(sub, text)
    text = " " + text + " "
    for regex, sub in T._ENDING_QUOTES:
        text = regex.sub(sub, text)
    for regex in T._CONTRACTIONS:
        text = regex.sub(r" \1 \2 ", text)
    return [T.BRACKETS.get(t, t) for t in text.split()]


def test_guarded_tokenizer_equals_every_rule(sst):
    from reviewlstm.io.text import _ptb
    import random
    rnd = random.Random(0)
    chars = list("abc ,.:;\"'()[]{}<>-!?$%&@#`nt'sSCANOT\\/*0123")
    texts = ["".join(rnd.choice(chars) for _ in range(rnd.randint(0, 40))) for _ in range(5000)]
    texts += [" ".join(e.tokens) for e in read_examples(sst / "dev.txt")]
    texts += ['I CANNOT wait, Gonna see it: "10/10"... (really) -- 1,000 times; y\'all won\'t!', "x.)", "'", '""']
    for t in texts:
        assert _ptb(t) == _tokenize_every_rule(t), t


def test_vocab_unknown_and_round_trip(tmp_path):
    v = Vocab.build([["a", "b", "a"], ["c"]], min_freq=2, extra=["z", "a"])
    assert v.itos == ["<pad>", "<unk>", "a", "z"]
    assert v.encode(["a", "never-seen"]) == [2, 1]
    v.save(tmp_path / "v.json")
    assert Vocab.load(tmp_path / "v.json").itos == v.itos


ROWS = [{"review": "Great film!", "stars": 5}, {"review": "Dull , long .", "stars": 2}]


def write(path, fmt, rows=ROWS):
    if fmt in ("csv", "tsv"):
        sep = "," if fmt == "csv" else "\t"
        lines = [sep.join(rows[0])] + [sep.join(f'"{v}"' if sep in str(v) else str(v) for v in r.values()) for r in rows]
        path.write_text("\n".join(lines) + "\n")
    elif fmt == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq
        pq.write_table(pa.Table.from_pylist(rows), path)
    return path


@pytest.mark.parametrize("fmt", ["csv", "tsv", "jsonl", "parquet"])
def test_tabular_formats_with_default_columns(tmp_path, fmt):
    path = write(tmp_path / f"r.{fmt}", fmt)
    rows = list(read_examples(path))
    assert [(e.text, e.rating) for e in rows] == [("Great film!", 5), ("Dull , long .", 2)]
    assert rows[0].row == {"review": "Great film!", "stars": 5 if fmt in ("jsonl", "parquet") else "5"}


def test_named_columns_and_other_scales(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("body,score,mine\nok,9,x\nbad,2,y\n")
    rows = list(read_examples(path, columns=Columns("mine", "score"), scale=(1, 10)))
    assert [(e.text, e.rating) for e in rows] == [("x", 9), ("y", 2)]
    with pytest.raises(DataError, match=r"r.csv:2: rating '9' in column 'score' is not an integer in 1..5"):
        list(read_examples(path, columns=Columns("mine", "score")))


@pytest.mark.parametrize("content,message", [
    ("text,stars\n,3\n", r"bad.csv:2: empty text in column 'text'"),
    ("text,stars\ngood,3.5\n", r"bad.csv:2: rating '3.5' in column 'stars' is not an integer in 1..5"),
    ("text,stars\ngood,five\n", r"bad.csv:2: rating 'five'"),
    ("text,stars\ngood,3\nbad,2,extra\n", r"bad.csv:3: ragged row: 3 fields, the header has 2"),
    ("text,stars\ngood,\n", r"bad.csv:2: missing rating in column 'stars'"),
    ("words,stars\ngood,3\n", r"bad.csv: no text column: expected one of text, review"),
    ("text,grade\ngood,3\n", r"bad.csv: no rating column"),
    ("", r"bad.csv: no rows: the file is empty"),
    ("text,stars\n", r"bad.csv: no rows: the file is empty or holds only a header"),
])
def test_bad_csv_rows_name_file_line_and_reason(tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(DataError, match=message):
        list(read_examples(path))


def test_undecodable_byte_names_its_line(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_bytes(b"text,stars\ngood,3\nbad \xff byte,2\n")
    with pytest.raises(DataError, match=r"bad.csv:3: undecodable byte 0xff in column 'text'"):
        list(read_examples(path))


def test_skip_bad_rows_counts_every_skipped_row(tmp_path):
    path = tmp_path / "mixed.jsonl"
    path.write_text('{"text": "fine", "rating": 4}\n{"text": "", "rating": 4}\nnot json\n'
                    '{"text": "also fine", "rating": 9}\n[1, 2]\n{"text": "last", "rating": 1}\n')
    bad = BadRows()
    rows = list(read_examples(path, on_bad="skip", bad=bad))
    assert [e.text for e in rows] == ["fine", "last"]
    assert bad.count == 4 and "mixed.jsonl:2" in bad.first[0]
    assert "skipped 4 bad row(s)" in bad.summary()


def test_wrong_format_and_unknown_extension(tmp_path):
    fake = tmp_path / "x.parquet"
    fake.write_text("text,rating\nhi,3\n")
    with pytest.raises(DataError, match=r"x.parquet: not a Parquet file"):
        list(read_examples(fake))
    other = tmp_path / "x.xlsx"
    other.write_text("")
    with pytest.raises(DataError, match=r"cannot tell the format from the extension '.xlsx'"):
        list(read_examples(other))
    with pytest.raises(DataError, match=r"nope.csv: no such file"):
        list(read_examples(tmp_path / "nope.csv"))
    trees = tmp_path / "t.txt"
    trees.write_text("(3 (2 fine) (3 film))\nthis is not a tree\n")
    with pytest.raises(DataError, match=r"t.txt:2: not an SST tree"):
        list(read_examples(trees))


def test_streaming_reads_lazily(tmp_path):
    path = tmp_path / "big.csv"
    path.write_text("text,rating\n" + "".join(f"review {i},3\n" for i in range(5000)) + ",3\n")
    it = read_examples(path)
    assert next(it).text == "review 0"  # the bad last row is not reached until it is read


def test_gzipped_csv(tmp_path):
    path = tmp_path / "r.csv.gz"
    with gzip.open(path, "wt") as f:
        f.write("text,rating\nnice,4\n")
    assert [e.rating for e in read_examples(path)] == [4]


def make_sst_zip(path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for split in ("train", "dev", "test"):
            z.writestr(f"trees/{split}.txt", f"(3 (2 {split}) (3 fine))\n")
    path.write_bytes(buf.getvalue())
    return hashlib.md5(buf.getvalue()).hexdigest()


def test_download_checks_md5_and_caches(tmp_path):
    archive = tmp_path / "served.zip"
    md5 = make_sst_zip(archive)
    cache = tmp_path / "cache"
    out = download_sst5(cache, url=archive.as_uri(), md5=md5, progress=False)
    assert [e.text for e in read_examples(out / "dev.txt")] == ["dev fine"]
    archive.unlink()  # cached: a second call needs no network
    assert download_sst5(cache, url=archive.as_uri(), md5=md5, progress=False) == out


def test_download_rejects_a_wrong_checksum(tmp_path):
    archive = tmp_path / "served.zip"
    make_sst_zip(archive)
    with pytest.raises(DataError, match="does not match the expected"):
        download_sst5(tmp_path / "cache", url=archive.as_uri(), md5="0" * 32, progress=False)
    assert not list((tmp_path / "cache").glob("*.zip")) and not list((tmp_path / "cache").glob("*.part"))
