"""Fresh databases of the session's chDB with the schema applied, cheaply.

Applying every schema version to an empty database runs ~150 statements (~0.5 s); hundreds
of tests each want a database of their own. :func:`fresh_store` applies the schema for real
once per process, to a template database, and gives each new database the template's tables
and views (``system.tables``' own CREATE statements, ~20) and its version rows: the same
objects, and a later ``apply_schema`` finds nothing to do. The tests of ``apply_schema``
itself (tests/storage) apply it for real on empty databases.
"""

from __future__ import annotations

import uuid
from pathlib import Path

from chainmap_otel.storage.schema import VERSION_TABLE, apply_schema
from chainmap_otel.storage.store import TraceStore, open_store

_TEMPLATES: dict[str, TraceStore] = {}

_OBJECTS_SQL = """SELECT name, engine, create_table_query FROM system.tables
WHERE database = {db:String} ORDER BY engine = 'MaterializedView', name"""


def _template(chdb_path: Path) -> TraceStore:
    key = str(chdb_path)
    if key not in _TEMPLATES:
        # A name no statement holds otherwise, so renaming it in the statements is exact.
        store = open_store(f"chdb://{chdb_path}?database=schema_template_{uuid.uuid4().hex}")
        apply_schema(store, progress=lambda line: None)
        _TEMPLATES[key] = store
    return _TEMPLATES[key]


def fresh_store(chdb_path: Path, prefix: str = "t") -> TraceStore:
    """A store on a new database ``<prefix>_<random>`` of the chDB at ``chdb_path`` holding
    the latest schema, as ``apply_schema`` leaves an empty database."""
    template = _template(chdb_path)
    store = open_store(f"chdb://{chdb_path}?database={prefix}_{uuid.uuid4().hex[:12]}")
    source, target = f"{template.database}.", f"{store.database}."
    for _name, _engine, create in template.query(
        _OBJECTS_SQL, {"db": template.database}
    ).result_rows:
        store.command(str(create).replace(source, target))
    store.command(f"INSERT INTO {target}{VERSION_TABLE} SELECT * FROM {source}{VERSION_TABLE}")
    return store
