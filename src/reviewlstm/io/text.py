"""Text to token ids: a Penn-Treebank tokenizer (the one SST was tokenized with) and a vocabulary.

Text that is not ASCII is NFKC-normalized first (``ｇｒｅａｔ`` reads as ``great``, ``ﬁne`` as ``fine``), in
training and prediction alike, except where that would split or rename a word (``don´t``, ``½``).

SST-5 comes already tokenized the PTB way: "does n't", "it 's", brackets as -LRB- / -RRB-, quotes
as `` and ''. A model trained on it must read raw reviews the same way, so raw text goes through
:func:`tokenize`, which turns "It's a gorgeous (if long) movie." into
['It', "'s", 'a', 'gorgeous', '-LRB-', 'if', 'long', '-RRB-', 'movie', '.'] and leaves text that is
already PTB-tokenized as it is (tokenize(" ".join(sst_tokens)) == sst_tokens).

The PTB rules assume one sentence at a time (NLTK's word_tokenize runs a sentence splitter
first): they split off only the text's last full stop. Users' reviews are many sentences, often
exported with HTML in them and written fast, so before the PTB rules :func:`tokenize`

- unescapes HTML entities (``&amp;``, ``&#39;``) and drops tags (``<br />``, ``<p>``);
- keeps URLs, e-mail addresses and emoticons (``:)``, ``:-(``, ``;)``) whole;
- puts the missing space after a sentence's end (``affordable.I did`` -> ``affordable . I did``,
  only between a lower-case word or a number and a capital or an opening bracket, so ``U.S.A``, ``e.g.The`` and ``3.5`` are left alone);
- splits the full stop off every word that ends a sentence inside the text, as SST does at its
  end (``good. Service`` -> ``good . Service``), but not off abbreviations and initials, which SST
  keeps whole (``Mr.``, ``etc.``, ``U.S.``, ``J.``), nor off ``...``.
"""
from __future__ import annotations

import functools
import html
import json
import re
import unicodedata
from collections import Counter
from pathlib import Path
from typing import Iterable

PAD, UNK = "<pad>", "<unk>"
UNK_ID = 1
_BRACKETS = {"-lrb-", "-rrb-", "-lsb-", "-rsb-", "-lcb-", "-rcb-"}


_ALNUM = re.compile(r"[^\W_]")  # a character str.isalnum() accepts: \w less the underscore


@functools.lru_cache(maxsize=1 << 16)  # a review's words repeat across a file: each decided once
def is_word(token: str) -> bool:
    """A token with a letter or digit in it (not punctuation, an emoji or a PTB bracket)."""
    return _ALNUM.search(token) is not None and token.lower() not in _BRACKETS
BRACKETS = {"(": "-LRB-", ")": "-RRB-", "[": "-LSB-", "]": "-RSB-", "{": "-LCB-", "}": "-RCB-"}
UNBRACKET = {v: k for k, v in BRACKETS.items()}

# The rules of the Penn Treebank tokenizer (as in the Stanford and NLTK tokenizers), in order.
_STARTING_QUOTES = [(re.compile(r'^"'), "``"), (re.compile(r"(``)"), r" \1 "),
                    (re.compile(r'([ (\[{<])"'), r"\1 `` ")]
_PUNCTUATION = [
    (re.compile(r"([:,])([^\d])"), r" \1 \2"),            # , and : unless inside a number (1,000)
    (re.compile(r"([:,])$"), r" \1 "),
    (re.compile(r"\.\.\."), " ... "),
    (re.compile(r"[;@#$%&?!]"), r" \g<0> "),
    (re.compile(r'([^\.])(\.)([\]\)}>"\']*)\s*$'), r"\1 \2\3 "),  # a final period
    (re.compile(r"[\]\[\(\)\{\}<>]"), r" \g<0> "),
    (re.compile(r"(?<!-)--(?!-)"), " -- "),
]
_ENDING_QUOTES = [(re.compile(r'"'), " '' "), (re.compile(r"(\S)('')"), r"\1 \2 "),
                  (re.compile(r"([^' ])('[sS]|'[mM]|'[dD]|') "), r"\1 \2 "),
                  (re.compile(r"([^' ])('ll|'LL|'re|'RE|'ve|'VE|n't|N'T) "), r"\1 \2 ")]


def _replacement(template: str):
    """A replacement template (r" \\1 \\2") as a function giving the same text. Python 3.11's re
    expands a template in Python for every match; a function made once per template does the same
    work with far less per match, which matters on texts of many short tokens."""
    parts = re.split(r"\\(\d)|\\g<(\d)>", template)
    lits = parts[0::3]
    groups = [int(a or b) for a, b in zip(parts[1::3], parts[2::3])]
    if not groups:
        return template
    if len(groups) == 1:
        (a, b), (g,) = lits, groups
        return lambda m: a + m[g] + b
    if len(groups) == 2:
        (a, b, c), (g, h) = lits, groups
        return lambda m: a + m[g] + b + m[h] + c
    (a, b, c, d), (g, h, k) = lits, groups
    return lambda m: a + m[g] + b + m[h] + c + m[k] + d


_STARTING_QUOTES = [(regex, _replacement(t)) for regex, t in _STARTING_QUOTES]
_PUNCTUATION = [(regex, _replacement(t)) for regex, t in _PUNCTUATION]
_ENDING_QUOTES = [(regex, _replacement(t)) for regex, t in _ENDING_QUOTES]
_SPLIT_TWO = _replacement(r" \1 \2 ")
_CONTRACTIONS = [re.compile(r"(?i)\b(can)(not)\b"), re.compile(r"(?i)\b(gon)(na)\b"),
                 re.compile(r"(?i)\b(got)(ta)\b"), re.compile(r"(?i)\b(wan)(na)\b")]
_CONTRACTION_WORDS = ["cannot", "gonna", "gotta", "wanna"]
# Words SST-5 (and the PTB) keep with their full stop; compared lower-cased. "no." is left out: as a
# word ("I said no.") it ends sentences far more often in reviews than it abbreviates "number".
ABBREVIATIONS = frozenset("""
mr mrs ms dr prof sr jr st mt vs etc al inc ltd co corp bros dept est approx appt apt ave blvd fig
e.g i.e a.m p.m ca cf jan feb mar apr jun jul aug sep sept oct nov dec mon tue tues wed thu thurs
fri sat sun gen gov sen rep sgt capt lt col rev vol vols pp ed eds min max
""".split())
_TAG = re.compile(r"</?[A-Za-z][^<>]{0,200}>")
_KEEP_WHOLE = re.compile(
    # Each alternative starts only where a match could begin (not inside a run of its own characters),
    # so the regex engine tries each run once: linear in the text, whatever its shape.
    r"(?<![\w./:])(?:https?://|www\.)\S+[^\s.,;:!?)\]}'\"]"  # URLs (a closing punctuation mark stays outside)
    r"|(?<![\w.+-])[\w.+-]+@[\w-]+(?:\.[\w-]+)+"              # e-mail addresses
    r"|(?<!\S)(?:[:;=xX][-o^']?[)(\]\[dDpP/\\|*3]+|[)(\]\[dDpP/\\|*][-o^']?[:;=]|<3|\^_?\^|-_-|o_O|O_o)(?!\S)")
# what a _KEEP_WHOLE match contains (letter-only emoticons such as xD are one PTB token anyway)
_MAY_KEEP_WHOLE = re.compile(r"[:;=@/<^_]|www\.")
# a sentence's end with no space after it: a lower-case word's (or number's) [.!?] (and closing brackets or quotes),
# then a capital starting a word, or an opening bracket
_MISSING_SPACE = re.compile(r"(?<=[a-z0-9][a-z0-9])([.!?]+[)\]}\"']*)(?=[(\[{]|[A-Z][a-z\s'])")
_SPACE_AFTER = _replacement(r"\1 ")
_LEADING_STOP = re.compile(r"(?<=\s)\.(?=[A-Za-z]{2})")  # "word .the" -> "word . the"
_DOTS = re.compile(r"\.{2,}")  # ".." and "......" are the "..." of hurried writing
# a full stop that ends a word, followed by closing quotes or brackets and then a space
_WORD_STOP = re.compile(r"(?<!\S)(\S*[^\s.])\.(?=[\]\)}>\"']*[\s!?])")
_INITIALISM = re.compile(r"^(?:[A-Za-z]\.)+[A-Za-z]$|^[A-HJ-Z]$")  # U.S(.), p.m(.), J(.) but not I(.)
_OPENING = "\"'`([{<"


def _split_stop(match: re.Match) -> str:
    return _stop_split(match.group(1))


@functools.lru_cache(maxsize=65536)  # reviews repeat their words: each is judged once
def _stop_split(word: str) -> str:
    bare = word.lstrip(_OPENING)
    if bare.lower() in ABBREVIATIONS or _INITIALISM.match(bare):
        return word + "."
    return word + " ."


def _clean(text: str) -> str:
    """HTML out, missing spaces after sentence ends in, sentence-internal full stops split off."""
    if "&" in text:
        text = html.unescape(text)
    if "<" in text:
        text = _TAG.sub(" ", text)
    if "." in text or "!" in text or "?" in text:
        text = _MISSING_SPACE.sub(_SPACE_AFTER, text)
    if "." in text:
        if ".." in text:
            text = _DOTS.sub(" ... ", text)
        text = _LEADING_STOP.sub(". ", text)
        text = _WORD_STOP.sub(_split_stop, text + " ")
    return text


_HAS_BRACKET = re.compile(r"[\]\[\(\)\{\}<>]")
# rules 4 and 6 of _PUNCTUATION (each character spaced off) as translation tables: the same result,
# in one C pass instead of a Python call per match
_SPACED_PUNCTUATION = str.maketrans({c: f" {c} " for c in ";@#$%&?!"})
_HAS_PUNCTUATION = re.compile(r"[;@#$%&?!]")
# brackets spaced off and named the PTB way (-LRB-) in the same pass: every bracket token comes from here
_SPACED_BRACKETS = str.maketrans({c: f" {BRACKETS.get(c, c)} " for c in "][(){}<>"})
_PTB_TOKEN = re.compile(r"^-[LR][RSC]B-$")


def tokenize(text: str, lowercase: bool = False) -> list[str]:
    """Split raw text into PTB tokens, brackets as -LRB- etc.; lowercase when asked.

    URLs, e-mail addresses and emoticons come out as one token each; the rest goes through
    :func:`_clean` and the PTB rules (:func:`_ptb`).
    """
    if not text.isascii():  # full-width letters, ligatures, superscripts read as the letters they are
        text = compatibility_form(text)
    if "\\" in text:
        text = text.replace("\\/", "/").replace("\\*", "*")  # SST's escapes, if pasted from the treebank
    text = _clean(text)
    if not _MAY_KEEP_WHOLE.search(text):  # most reviews: no URL, address or emoticon to look for
        tokens = _ptb(text)
    else:
        tokens, start = [], 0
        for m in _KEEP_WHOLE.finditer(text):
            if text[start:m.start()].strip():  # nothing between two matches: no PTB rules to run
                tokens += _ptb(text[start:m.start()])
            tokens.append(m.group(0))
            start = m.end()
        tokens += _ptb(text[start:])
    if not lowercase:
        return tokens
    return [t if t in UNBRACKET else t.lower() for t in tokens]


def _ptb(text: str) -> list[str]:
    """The PTB rules. Each runs only when the characters it rewrites are in the text (scoring a
    million reviews spends much of its time here); the result is the same as running every rule."""
    text = " " + text.strip() + " "
    if '"' in text or "``" in text:
        for regex, sub in _STARTING_QUOTES:
            text = regex.sub(sub, text)
    if "," in text or ":" in text:
        for regex, sub in _PUNCTUATION[:2]:
            text = regex.sub(sub, text)
    if "..." in text:
        text = _PUNCTUATION[2][0].sub(_PUNCTUATION[2][1], text)
    if _HAS_PUNCTUATION.search(text):
        text = text.translate(_SPACED_PUNCTUATION)  # ;@#$%&?! (rule 4, as a table: one C pass however many)
    text = _PUNCTUATION[4][0].sub(_PUNCTUATION[4][1], text)  # the final period
    if _HAS_BRACKET.search(text):
        text = text.translate(_SPACED_BRACKETS)  # rule 6, as a table, brackets renamed
    if "--" in text:
        text = _PUNCTUATION[6][0].sub(_PUNCTUATION[6][1], text)
    text = " " + text + " "
    if '"' in text or "'" in text:
        for regex, sub in _ENDING_QUOTES:
            text = regex.sub(sub, text)
    low = text.lower()
    for word, regex in zip(_CONTRACTION_WORDS, _CONTRACTIONS):
        if word in low:
            text = regex.sub(_SPLIT_TWO, text)
    return text.split()


@functools.lru_cache(maxsize=4096)
def _splits_words(ch: str) -> bool:
    """Characters NFKC would turn into a space and a combining mark (the acute accent written for an
    apostrophe, "don´t") or into digits around a fraction slash (½): kept as they are, since either
    form would split or rename a word."""
    form = unicodedata.normalize("NFKC", ch)
    return form != ch and ((" " in form and len(form) > 1) or "\u2044" in form)


def compatibility_form(text: str) -> str:
    """NFKC, except for the characters `_splits_words` keeps: ｇｒｅａｔ -> great, ﬁne -> fine, a
    no-break space -> a space, don´t -> don´t."""
    keep = [ch for ch in set(text) if not ch.isascii() and _splits_words(ch)]
    if not keep:
        return unicodedata.normalize("NFKC", text)
    parts = re.split("([" + re.escape("".join(keep)) + "])", text)
    return "".join(p if i % 2 else unicodedata.normalize("NFKC", p) for i, p in enumerate(parts))


def normalize(token: str, lowercase: bool) -> str:
    """One already-split token as the vocabulary sees it (SST's escapes undone, case folded)."""
    if not token.isascii():
        token = compatibility_form(token)
    token = token.replace("\\/", "/").replace("\\*", "*")
    return token.lower() if lowercase and not _PTB_TOKEN.match(token) else token


def text_tokens(text: str, pretokenized: list[str] | None, lowercase: bool) -> list[str]:
    """The tokens a model reads: SST's own tokens when the input has them, else the PTB tokenizer's.
    Training, prediction and explanation all go through here, so they read text the same way."""
    if pretokenized is not None:
        return [normalize(t, lowercase) for t in pretokenized]
    return tokenize(text, lowercase=lowercase)


class Vocab:
    """Token <-> id. Id 0 is padding, id 1 the unknown token: an unseen word never crashes, it reads as <unk>."""

    def __init__(self, itos: list[str]):
        if itos[:2] != [PAD, UNK]:
            raise ValueError(f"a vocabulary must start with {PAD!r}, {UNK!r}, got {itos[:2]}")
        self.itos = list(itos)
        self.stoi = {t: i for i, t in enumerate(self.itos)}
        if len(self.stoi) != len(self.itos):
            raise ValueError("the vocabulary has duplicate tokens")

    @classmethod
    def build(cls, token_lists: Iterable[list[str]], min_freq: int = 1, extra: Iterable[str] = ()) -> "Vocab":
        """Every token seen at least min_freq times, most frequent first, then `extra` tokens not yet in."""
        counts = Counter(t for tokens in token_lists for t in tokens)
        itos = [PAD, UNK] + [t for t, c in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if c >= min_freq]
        seen = set(itos)
        itos += [t for t in extra if not (t in seen or seen.add(t))]
        return cls(itos)

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, tokens: list[str]) -> list[int]:
        return [self.stoi.get(t, UNK_ID) for t in tokens]

    def save(self, path: Path) -> None:
        Path(path).write_text(json.dumps(self.itos, ensure_ascii=False))

    @classmethod
    def load(cls, path: Path) -> "Vocab":
        itos = json.loads(Path(path).read_text(encoding="utf-8"))
        if not isinstance(itos, list) or not all(isinstance(t, str) for t in itos):
            raise ValueError(f"{path}: expected a JSON list of tokens")
        return cls(itos)
