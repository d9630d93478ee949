"""The user-facing docs stand alone: they name no file outside the repository."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


@pytest.mark.parametrize("path", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_docs_point_at_no_shared_folder(path):
    """Users have no `shared/` folder (the development machine's); only scripts/test.sh
    may use ../shared/bin/loopback-only, with its fallback."""
    hits = [f"{path.name}:{n}: {line.strip()}" for n, line in enumerate(path.read_text().splitlines(), 1)
            if re.search(r"\bshared/", line)]
    assert not hits, "\n".join(hits)


def test_every_doc_is_checked():
    assert len(DOCS) >= 7 and (ROOT / "docs" / "ray.md") in DOCS and (ROOT / "docs" / "snake.md") in DOCS
