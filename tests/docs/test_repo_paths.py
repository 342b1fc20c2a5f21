"""Every repository path the README and docs/ name exists.

A path is named as inline code (`chainmap_otel/analysis/membership.py`, `collector-config/`)
relative to the repository root, or as a link relative to the page. Code blocks are
sessions and examples, not references, and are not read.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.docs.pages import ROOT, code_spans, links, pages

# Where a file of the repository can live; a code span that starts elsewhere (`run/...`,
# `@opentelemetry/...`, `1h/5m`, an upstream project's `pkg/macros/macros.go`) is not a
# path of this repository.
TOP_LEVEL = {entry.name for entry in ROOT.iterdir() if not entry.name.startswith(".")}


def named_path(span: str) -> str | None:
    """The repository path a code span names, or None when it names none."""
    if any(mark in span for mark in (" ", "...", "<", ">", "*", "{", "$", ":", "|", "=")):
        return None
    if span.startswith(("/", "~", ".")) or "/" not in span:
        return span if span in TOP_LEVEL else None
    return span if span.split("/")[0] in TOP_LEVEL else None


def references() -> list[tuple[str, Path]]:
    found = []
    for page in pages():
        label = page.relative_to(ROOT).as_posix()
        for span in code_spans(page):
            path = named_path(span)
            if path is not None:
                found.append((f"{label}: `{span}`", ROOT / path))
        for target in links(page):
            if target.startswith(("http://", "https://", "mailto:", "#")):
                continue
            found.append((f"{label}: ({target})", page.parent / target.split("#")[0]))
    return found


REFERENCES = list(dict.fromkeys(references()))


def test_the_pages_name_paths() -> None:
    named = {reference for reference, _ in REFERENCES}
    assert "README.md: (docs/chains.md)" in named
    assert any("chainmap_otel/analysis/membership.py" in reference for reference in named)


@pytest.mark.parametrize(("reference", "path"), REFERENCES, ids=[r for r, _ in REFERENCES])
def test_every_named_path_exists(reference: str, path: Path) -> None:
    assert path.exists(), f"{reference} names a path that does not exist: {path}"
