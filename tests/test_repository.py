"""The repository stands on its own: no pointers to notes outside it, and the README's links work."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEXT = [p for folder in ("bench", "methods", "datasets", "metrics", "reports", "tests", "benchmarks", "docs")
        for p in (ROOT / folder).rglob("*") if p.suffix in {".py", ".md", ".toml"}]  # fmt: skip
TEXT += [ROOT / "README.md", ROOT / "pyproject.toml"]
OUTSIDE = re.compile(r"\.\./shared|DESIGN(\.md| §)|\b[Ii]ssue \d+")


def test_nothing_points_outside_the_repository():
    hits = [f"{p.relative_to(ROOT)}:{n}" for p in TEXT if p != Path(__file__).resolve()
            for n, line in enumerate(p.read_text().splitlines(), 1) if OUTSIDE.search(line)]  # fmt: skip
    assert not hits, hits


def _anchor(heading: str) -> str:
    """GitHub's anchor of a Markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_readme_and_docs_links_resolve():
    for page in [ROOT / "README.md", *(ROOT / "docs").glob("*.md")]:
        for target in re.findall(r"\]\(([^)#\s]+\.md)(#[^)]*)?\)", page.read_text()):
            path, anchor = (page.parent / target[0]).resolve(), target[1][1:]
            assert path.is_file(), f"{page.name}: link to missing {target[0]}"
            if anchor:
                headings = [_anchor(h) for h in re.findall(r"^#+ (.*)$", path.read_text(), re.M)]
                assert anchor in headings, f"{page.name}: no heading #{anchor} in {target[0]}"
    assert (ROOT / "LICENSE").is_file()


def test_lower_layers_never_import_the_command_line_layer():
    """datasets/, metrics/ and methods/ are used by the harness, never the other way round."""
    upward = re.compile(r"^\s*(from|import) rtrbench\.(config|cli|sweep|trainer|tracking|registry)\b", re.M)
    hits = [str(p.relative_to(ROOT)) for folder in ("datasets", "metrics", "methods")
            for p in (ROOT / folder).rglob("*.py") if upward.search(p.read_text())]  # fmt: skip
    assert not hits, hits
