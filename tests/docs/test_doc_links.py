"""Every link from the README and between the docs/ pages resolves: file and #anchor."""

from __future__ import annotations

import pytest

from tests.docs.pages import ROOT, anchor, anchors, links, pages


def internal_links() -> list[tuple[str, str]]:
    """(page, target) for every link to a Markdown page of this repository."""
    found = []
    for page in pages():
        for target in links(page):
            if target.startswith(("http://", "https://", "mailto:")):
                continue
            if target.startswith("#") or target.split("#")[0].endswith(".md"):
                found.append((page.relative_to(ROOT).as_posix(), target))
    return found


LINKS = internal_links()


def test_the_readme_links_every_docs_page() -> None:
    linked = {target.split("#")[0] for page, target in LINKS if page == "README.md"}
    for doc in sorted((ROOT / "docs").glob("*.md")):
        assert f"docs/{doc.name}" in linked, f"README.md's 'Where next' does not link {doc.name}"


def test_anchor_follows_github() -> None:
    assert anchor("`chainmap serve`: API and web view") == "chainmap-serve-api-and-web-view"
    assert anchor("Mixed fleets: services that do not run chainmap") == (
        "mixed-fleets-services-that-do-not-run-chainmap"
    )


@pytest.mark.parametrize(("page", "target"), LINKS, ids=[f"{p}->{t}" for p, t in LINKS])
def test_every_link_resolves(page: str, target: str) -> None:
    source = ROOT / page
    path, _, fragment = target.partition("#")
    linked = (source.parent / path).resolve() if path else source
    assert linked.is_file(), f"{page} links {target}: no such file"
    if fragment:
        assert fragment in anchors(linked), (
            f"{page} links {target}: {linked.name} has no heading with that anchor"
        )
