"""The documentation stays readable by its readers: a short user's manual, and links that land.

README.md is the user's manual and is held to 400 lines; operations, the
design record and the measured figures live in docs/ and bench/RESULTS.md.
Every relative link in them must name a file that exists and, with a
``#fragment``, a heading of that file, as GitHub renders its anchors.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCUMENTS = [README, *sorted((ROOT / "docs").glob("*.md")), ROOT / "bench" / "RESULTS.md"]
README_MAX_LINES = 400

# [text](target): the text may wrap over lines; the target has no spaces.
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
EXTERNAL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)
FENCE = re.compile(r"^\s*(```|~~~)")


def _outside_code(text: str) -> str:
    """The text with fenced code blocks and inline code spans blanked out."""
    kept, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
            kept.append("")
        else:
            kept.append("" if fenced else re.sub(r"`[^`]*`", "", line))
    return "\n".join(kept)


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(document: Path) -> set[str]:
    """Every heading anchor of a markdown file, repeated headings numbered as GitHub numbers them."""
    seen: dict[str, int] = {}
    found = set()
    fenced = False
    for line in document.read_text().splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        heading = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if fenced or not heading:
            continue
        slug = _slug(heading.group(1))
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        found.add(slug if count == 0 else f"{slug}-{count}")
    return found


def broken_links(document: Path) -> list[str]:
    broken = []
    for target in LINK.findall(_outside_code(document.read_text())):
        if EXTERNAL.match(target):
            continue
        path, _, fragment = target.partition("#")
        linked = (document.parent / path).resolve() if path else document
        if not linked.exists():
            broken.append(f"{target}: no file {linked.relative_to(ROOT) if linked.is_relative_to(ROOT) else linked}")
        elif fragment and (linked.suffix != ".md" or fragment not in anchors(linked)):
            broken.append(f"{target}: no heading #{fragment} in {linked.relative_to(ROOT)}")
    return broken


def test_the_readme_is_a_manual_of_at_most_400_lines():
    lines = len(README.read_text().splitlines())
    assert lines <= README_MAX_LINES, (
        f"README.md has {lines} lines, at most {README_MAX_LINES}: move operations to docs/operations.md, "
        "design to docs/internals.md, figures to bench/RESULTS.md"
    )


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: str(path.relative_to(ROOT)))
def test_every_relative_link_names_an_existing_file_and_heading(document: Path):
    assert document.exists(), f"{document.relative_to(ROOT)} is missing"
    broken = broken_links(document)
    assert not broken, "broken links:\n" + "\n".join(broken)


def test_anchors_are_the_ones_github_renders():
    # The link check is only as good as its slugs: GitHub drops code marks and punctuation, keeps hyphens.
    assert _slug("Hosting any `MCPServer`") == "hosting-any-mcpserver"
    assert _slug("Identity: who is calling") == "identity-who-is-calling"
    assert _slug("Easy Auth (optional)") == "easy-auth-optional"
    assert _slug("Key Vault and rotating keys") == "key-vault-and-rotating-keys"
