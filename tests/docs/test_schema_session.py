"""The ``chainmap schema apply`` session in docs/storage.md applies every migration the
package ships, in order, and ends at the latest version (it drifted to 2 of 8 once)."""

from __future__ import annotations

import re

from chainmap_otel.storage.schema import latest_version, schema_dir
from tests.docs.pages import DOCS


def test_the_documented_schema_apply_lists_every_migration() -> None:
    text = (DOCS / "storage.md").read_text(encoding="utf-8")
    applied = re.findall(r"^applying schema version (\d+) \((\w+)\) to default$", text, re.M)
    shipped = sorted(p.stem for p in (schema_dir() / "clickhouse").glob("[0-9][0-9][0-9]_*.sql"))
    assert [name for _, name in applied] == shipped
    assert [int(v) for v, _ in applied] == [int(name[:3]) for name in shipped]
    (final,) = re.findall(r"^schema of default on .* is at version (\d+)$", text, re.M)
    assert int(final) == latest_version() == int(shipped[-1][:3])
