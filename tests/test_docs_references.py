"""Every pointer in the code and the docs leads somewhere: a section named in quotes after
BENCHMARKS.md or a docs/experiments file is a heading there (or the start of one), and every
relative Markdown link names a file that exists."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET = re.compile(r'((?:docs/)?experiments/[\w-]+\.md|BENCHMARKS\.md)\]?(?:\([^)]*\))?[,:]?\s*\(?"([^"]+)"')


def _flat(text: str) -> str:
    """Comment lines joined (a reference may wrap over `# ` lines), whitespace collapsed."""
    return re.sub(r"\s+", " ", re.sub(r"\n\s*#\s?", " ", text))


def _headings(path: Path) -> list[str]:
    return [re.sub(r"\s+", " ", line.lstrip("#").strip()) for line in path.read_text().splitlines()
            if line.startswith("#")]


def _sources() -> list[Path]:
    files = list((ROOT / "src").rglob("*.py")) + list((ROOT / "src").rglob("*.md")) + list((ROOT / "bench").glob("*.py"))
    return files + list((ROOT / "docs").rglob("*.md")) + [ROOT / "README.md", ROOT / "BENCHMARKS.md"]


def test_every_section_named_after_a_benchmarks_file_is_a_heading_there():
    checked, missing = 0, []
    for path in _sources():
        for target, section in TARGET.findall(_flat(path.read_text())):
            name = target if target == "BENCHMARKS.md" else "docs/experiments/" + target.split("experiments/")[1]
            if not any(h.startswith(section) for h in _headings(ROOT / name)):
                missing.append(f"{path.relative_to(ROOT)}: {name}, \"{section}\"")
            checked += 1
    assert checked > 5 and not missing, missing


def test_every_relative_markdown_link_names_a_file_that_exists():
    broken = []
    for path in [p for p in _sources() if p.suffix == ".md"]:
        for target in re.findall(r"\]\(([^)\s]+)\)", path.read_text()):
            if target.startswith(("http://", "https://", "#", "mailto:")):
                continue
            if not (path.parent / target.split("#")[0]).exists():
                broken.append(f"{path.relative_to(ROOT)}: {target}")
    assert not broken, broken
