"""The documents point where they say: every relative link in README.md and docs/*.md
names a file that exists and, with a `#fragment`, a heading of that file (GitHub's
anchor rule), and the README stays a guide (under 250 lines). A moved section or a
renamed heading fails here rather than leaving a reader at a dead link."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def anchor_of(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.S)
    return {anchor_of(h) for h in re.findall(r"^#+ (.*)$", text, flags=re.M)}


def dead_links(document: Path) -> list[str]:
    dead = []
    for target in LINK.findall(document.read_text()):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        path, _, fragment = target.partition("#")
        file = (document.parent / path) if path else document
        if not file.exists():
            dead.append(f"{target} (no such file)")
        elif fragment and file.suffix == ".md" and fragment not in anchors(file):
            dead.append(f"{target} (no such heading)")
    return dead


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: p.name)
def test_every_relative_link_resolves(document):
    assert dead_links(document) == []


def test_a_dead_link_and_a_missing_heading_are_found(tmp_path):
    (tmp_path / "other.md").write_text("# Other\n\n## The robust verdict, measured\n")
    doc = tmp_path / "doc.md"
    doc.write_text("[a](other.md#the-robust-verdict-measured) [b](other.md#gone) [c](nowhere.md)")
    assert dead_links(doc) == ["other.md#gone (no such heading)", "nowhere.md (no such file)"]


def test_readme_is_a_guide_not_a_notebook():
    assert len((ROOT / "README.md").read_text().splitlines()) < 250
