"""The README's "What trace tools do not do" table: every row names a test that exists.

Each claim is only as good as the test behind it; a renamed or deleted test would leave the
claim unbacked, so every row's last cell must name ``path::test_function`` of a test module
in ``tests/`` that defines it.
"""

from __future__ import annotations

import re

from tests.docs.pages import ROOT

README = ROOT / "README.md"
SECTION = "## What trace tools do not do"
_TEST = re.compile(r"^`(tests/[\w/]+\.py)::(test_\w+)`$")


def rows() -> list[list[str]]:
    text = README.read_text(encoding="utf-8")
    assert SECTION in text, f"the README lost its section {SECTION!r}"
    body = text.split(SECTION, 1)[1].split("\n## ", 1)[0]
    table = [line for line in body.splitlines() if line.startswith("| ")]
    return [[cell.strip() for cell in line.strip("|").split(" | ")] for line in table[1:]]


def test_every_claim_names_a_test_that_exists() -> None:
    claims = [row for row in rows() if not set(row[0]) <= {"-", " "}]
    assert len(claims) >= 5, claims
    for claim in claims:
        match = _TEST.match(claim[-1])
        assert match, f"the claim {claim[0]!r} names no test as path::function: {claim[-1]!r}"
        path, name = ROOT / match.group(1), match.group(2)
        assert path.is_file(), f"{match.group(1)} (backing {claim[0]!r}) does not exist"
        source = path.read_text(encoding="utf-8")
        assert re.search(rf"^def {name}\(", source, re.MULTILINE), (
            f"{match.group(1)} defines no {name} (backing {claim[0]!r})"
        )
