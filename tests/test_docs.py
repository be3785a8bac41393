"""The README and the guides in docs/ read whole and their commands parse: every paragraph ends as
a sentence ends (none cut off mid-sentence), and every `reviewlstm ...` line of a code block is a
command the CLI's own parser accepts."""
import contextlib
import io
import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GUIDES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _blocks(text: str):
    """(prose paragraphs, code blocks) of a Markdown file."""
    prose, code, para, block, fenced = [], [], [], [], False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            if fenced:
                code.append(block)
                block = []
            elif para:
                prose.append(para)
                para = []
            fenced = not fenced
            continue
        if fenced:
            block.append(line)
        elif line.strip():
            para.append(line)
        elif para:
            prose.append(para)
            para = []
    if para:
        prose.append(para)
    return prose, code


def _is_sentence_paragraph(para: list[str]) -> bool:
    first = para[0].lstrip()
    return not (first.startswith(("#", "|", "-", "*", ">", "<", "!", "[")) or re.match(r"\d+\.", first)
                or para[0].startswith("    "))


@pytest.mark.parametrize("path", GUIDES, ids=lambda p: p.name)
def test_every_paragraph_ends_as_a_sentence_ends(path):
    prose, _ = _blocks(path.read_text())
    paragraphs = [" ".join(p) for p in prose if _is_sentence_paragraph(p)]
    cut = [p[-80:] for p in paragraphs if not re.search(r"[.:!?)]([*_`\"']*)$", p.rstrip())]
    # a paragraph that closes a parenthesis it never opened starts mid-sentence (an orphan), and one
    # that opens more than it closes was cut off
    unbalanced = [p[:80] for p in paragraphs if re.sub(r"`[^`]*`", "", p).count("(") != re.sub(r"`[^`]*`", "", p).count(")")]
    assert not cut and not unbalanced, (cut, unbalanced)


def _commands(code: list[list[str]]):
    for block in code:
        joined = "\n".join(block).replace("\\\n", " ")
        for line in joined.splitlines():
            line = line.strip().removeprefix("$ ")
            if not line.startswith("reviewlstm "):
                continue
            yield re.split(r"\s(?:\||>|<|&&|;|2>)\s?", line)[0].split("  #")[0]


def test_every_command_in_the_guides_parses():
    from reviewlstm.apps.cli import build_parser
    parser, checked, refused = build_parser(), 0, []
    for path in GUIDES:
        for command in _commands(_blocks(path.read_text())[1]):
            checked += 1
            err = io.StringIO()
            try:
                with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                    parser.parse_args(shlex.split(command)[1:])
            except SystemExit as e:
                if e.code:
                    refused.append(f"{path.name}: {command}: {err.getvalue().strip().splitlines()[-1]}")
    assert checked > 15 and not refused, refused
