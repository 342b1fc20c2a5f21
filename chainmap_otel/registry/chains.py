"""The chain registry: every version of every chain definition, in PostgreSQL.

A definition is stored as the mapping a chains YAML holds for it (``window: 30d``, globs,
regexes as written), validated by the YAML loader itself, so a chain behaves the same
pushed from a file, written through the API or pulled back into a file. Each write adds
a version (a deletion too) and NOTIFYs :data:`NOTIFY_CHANNEL` in the same transaction,
so listeners see it exactly when it is committed. Writes to one chain are serialised by
an advisory lock; ``if_match`` makes them optimistic (the API's ``If-Match``).
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import yaml

from chainmap_otel.errors import ChainDefinitionError, NotFoundError, RegistryConflictError
from chainmap_otel.registry.postgres import RegistryDatabase
from chainmap_otel.tagging.chainsfile import plain_data
from chainmap_otel.tagging.definitions import ChainCatalog, ChainDefinition, parse_document

__all__ = ["NOTIFY_CHANNEL", "ChainRegistry", "PushReport", "StoredChain", "validate_definition"]

#: The LISTEN/NOTIFY channel every registry write announces itself on.
NOTIFY_CHANNEL = "chainmap_chains"
_PUSH_LOCK = 4242002

_SELECT = """
SELECT v.chain_id, v.version, v.definition, v.deleted, v.author, v.comment, v.created_at
FROM chainmap_chain_versions v"""


@dataclass(frozen=True)
class StoredChain:
    """One version of one chain as the registry holds it."""

    chain_id: str
    version: int
    definition: dict[str, Any] | None
    deleted: bool
    author: str
    comment: str
    created_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.chain_id,
            "version": self.version,
            "deleted": self.deleted,
            "author": self.author,
            "comment": self.comment,
            "created_at": self.created_at.isoformat(),
            "definition": self.definition,
        }


@dataclass
class PushReport:
    """What ``push`` did, chain ids per outcome."""

    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, list[str]]:
        return {
            "added": self.added,
            "changed": self.changed,
            "unchanged": self.unchanged,
            "deleted": self.deleted,
            "kept": self.kept,
        }


def _canonical(definition: Mapping[str, Any]) -> str:
    return json.dumps(definition, sort_keys=True, separators=(",", ":"), default=str)


def validate_definition(raw: object, source: str = "definition") -> ChainDefinition:
    """``raw`` checked by the chains loader; raises ChainDefinitionError naming each field.

    The data is validated as it is (never through a text form, so every Unicode character
    arrives as it was sent); text no store keeps (NUL, unpaired surrogates) and numbers out
    of range are problems like any other.
    """
    if not isinstance(raw, dict):
        raise ChainDefinitionError(
            [f"{source}: expected a chain mapping (id, name, category, entry, ...)"]
        )
    try:
        return parse_document({"version": 1, "chains": [raw]}, source=source).chains[0]
    except ChainDefinitionError as exc:
        # The sender wrote one chain, not a file's list of them: name the field only.
        prefix = re.compile(rf"^{re.escape(source)}(?::\d+)?: (?:chains\[0\]\.?)?")
        raise ChainDefinitionError(
            [prefix.sub(f"{source}: ", problem) for problem in exc.problems]
        ) from None


def _plain(value: Any) -> Any:
    """Definitions as plain JSON types (dict/list subclasses and dates become plain)."""
    return json.loads(json.dumps(plain_data(value), default=str))


def _row(row: tuple[Any, ...]) -> StoredChain:
    return StoredChain(
        chain_id=row[0],
        version=int(row[1]),
        definition=row[2],
        deleted=bool(row[3]),
        author=row[4],
        comment=row[5],
        created_at=row[6],
    )


class ChainRegistry:
    """Chain definitions with versions; every method is one transaction."""

    def __init__(self, database: RegistryDatabase) -> None:
        self.database = database

    # -- reads ---------------------------------------------------------------------

    def current(self) -> list[StoredChain]:
        """The live chains at their current version, in catalog order."""
        with self.database.connection() as conn:
            rows = conn.execute(
                _SELECT + " JOIN chainmap_chain_current c "
                "ON c.chain_id = v.chain_id AND c.version = v.version "
                "ORDER BY c.position, c.chain_id"
            ).fetchall()
        return [_row(r) for r in rows]

    def catalog(self, current: list[StoredChain] | None = None) -> ChainCatalog:
        """The live chains (or ``current``) as a validated catalog (the loader's own checks)."""
        definitions = [c.definition for c in (self.current() if current is None else current)]
        source = f"registry {self.database.url_for_display}"
        if not definitions:
            return ChainCatalog(source=source)
        return parse_document({"version": 1, "chains": definitions}, source=source)

    def get(self, chain_id: str) -> StoredChain | None:
        with self.database.connection() as conn:
            row = conn.execute(
                _SELECT + " JOIN chainmap_chain_current c "
                "ON c.chain_id = v.chain_id AND c.version = v.version WHERE v.chain_id = %s",
                (chain_id,),
            ).fetchone()
        return _row(row) if row else None

    def history(self, chain_id: str) -> list[StoredChain]:
        with self.database.connection() as conn:
            rows = conn.execute(
                _SELECT + " WHERE v.chain_id = %s ORDER BY v.version", (chain_id,)
            ).fetchall()
        if not rows:
            raise NotFoundError(
                "chain",
                chain_id,
                f"chain {chain_id!r} has no versions in the registry; "
                "`chainmap registry list` shows the chains it holds",
            )
        return [_row(r) for r in rows]

    def version(self, chain_id: str, version: int) -> StoredChain:
        for stored in self.history(chain_id):
            if stored.version == version:
                return stored
        raise NotFoundError(
            "chain version",
            f"{chain_id}@{version}",
            f"chain {chain_id!r} has no version {version}; "
            f"`chainmap registry history {chain_id}` lists its versions",
        )

    def pull(self) -> str:
        """The live chains as a chains YAML file (``chainmap chains validate`` accepts it)."""
        document = {"version": 1, "chains": [c.definition for c in self.current()]}
        return yaml.safe_dump(document, sort_keys=False, allow_unicode=True)

    def diff(self, chain_id: str, old: int, new: int) -> str:
        """A unified diff of two versions' YAML."""
        texts = []
        for number in (old, new):
            stored = self.version(chain_id, number)
            body = (
                yaml.safe_dump(stored.definition, sort_keys=False, allow_unicode=True)
                if stored.definition is not None
                else "(deleted)\n"
            )
            texts.append(body.splitlines(keepends=True))
        return "".join(
            difflib.unified_diff(
                texts[0], texts[1], f"{chain_id} v{old}", f"{chain_id} v{new}", n=3
            )
        )

    # -- writes --------------------------------------------------------------------

    def create(self, raw: object, author: str = "", comment: str = "") -> StoredChain:
        """A new chain (version 1, or the next after an earlier deletion)."""
        chain = validate_definition(raw)
        with self.database.connection() as conn:
            self._lock_chain(conn, chain.id)
            if self._current_version(conn, chain.id) is not None:
                raise RegistryConflictError(
                    f"chain {chain.id!r} already exists; change it with PUT and If-Match",
                    current_version=self._current_version(conn, chain.id),
                )
            return self._write(conn, chain.id, _plain(raw), author, comment, position=None)

    def update(
        self,
        chain_id: str,
        raw: object,
        if_match: int | None,
        author: str = "",
        comment: str = "",
    ) -> StoredChain:
        """A new version of ``chain_id``; ``if_match`` must be its current version (if given)."""
        chain = validate_definition(raw)
        if chain.id != chain_id:
            raise ChainDefinitionError(
                [f"definition: id {chain.id!r} does not match the chain {chain_id!r} it replaces"]
            )
        with self.database.connection() as conn:
            self._lock_chain(conn, chain_id)
            current = self._require_current(conn, chain_id)
            self._check_match(chain_id, current, if_match)
            return self._write(conn, chain_id, _plain(raw), author, comment, position=None)

    def delete(
        self, chain_id: str, if_match: int | None, author: str = "", comment: str = ""
    ) -> StoredChain:
        with self.database.connection() as conn:
            self._lock_chain(conn, chain_id)
            current = self._require_current(conn, chain_id)
            self._check_match(chain_id, current, if_match)
            return self._write(conn, chain_id, None, author, comment, position=None)

    def rollback(self, chain_id: str, version: int, author: str = "") -> StoredChain:
        """A new version with the definition ``version`` had (a deleted one deletes)."""
        target = self.version(chain_id, version)
        with self.database.connection() as conn:
            self._lock_chain(conn, chain_id)
            return self._write(
                conn, chain_id, target.definition, author, f"rollback to v{version}", None
            )

    def push(
        self,
        definitions: Iterable[Mapping[str, Any]],
        *,
        author: str = "",
        comment: str = "",
        prune: bool = False,
    ) -> PushReport:
        """Store a file's chains: changed ones get a version, unchanged ones are untouched.

        Chains in the registry but not in ``definitions`` are deleted only with ``prune``.
        The file's order becomes the catalog order. Callers validate the whole file first
        (``chainmap registry push`` loads it like ``chains validate``).
        """
        wanted = [_plain(d) for d in definitions]
        for raw in wanted:
            validate_definition(raw, source=f"chain {raw.get('id', '?')}")
        report = PushReport()
        with self.database.connection() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_PUSH_LOCK,))
            existing = {
                row[0]: row[1]
                for row in conn.execute(
                    "SELECT c.chain_id, v.definition FROM chainmap_chain_current c "
                    "JOIN chainmap_chain_versions v "
                    "ON v.chain_id = c.chain_id AND v.version = c.version"
                ).fetchall()
            }
            for position, raw in enumerate(wanted):
                chain_id = str(raw["id"])
                self._lock_chain(conn, chain_id)
                before = existing.get(chain_id)
                if before is not None and _canonical(before) == _canonical(raw):
                    report.unchanged.append(chain_id)
                    conn.execute(
                        "UPDATE chainmap_chain_current SET position = %s WHERE chain_id = %s",
                        (position, chain_id),
                    )
                    continue
                self._write(conn, chain_id, raw, author, comment, position=position)
                (report.changed if before is not None else report.added).append(chain_id)
            listed = {str(raw["id"]) for raw in wanted}
            for chain_id in sorted(set(existing) - listed):
                if prune:
                    self._lock_chain(conn, chain_id)
                    self._write(conn, chain_id, None, author, comment or "pruned by push", None)
                    report.deleted.append(chain_id)
                else:
                    report.kept.append(chain_id)
        return report

    def compare(self, definitions: Iterable[Mapping[str, Any]]) -> PushReport:
        """What ``push(definitions, prune=True)`` would do, without writing: ``deleted``
        lists the chains the registry holds and the definitions lack."""
        wanted = [_plain(d) for d in definitions]
        existing = {c.chain_id: c.definition for c in self.current()}
        report = PushReport()
        for raw in wanted:
            chain_id = str(raw["id"])
            before = existing.get(chain_id)
            if before is None:
                report.added.append(chain_id)
            elif _canonical(before) == _canonical(raw):
                report.unchanged.append(chain_id)
            else:
                report.changed.append(chain_id)
        report.deleted = sorted(set(existing) - {str(raw["id"]) for raw in wanted})
        return report

    # -- internals -----------------------------------------------------------------

    @staticmethod
    def _lock_chain(conn: Any, chain_id: str) -> None:
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (chain_id,))

    @staticmethod
    def _current_version(conn: Any, chain_id: str) -> int | None:
        row = conn.execute(
            "SELECT version FROM chainmap_chain_current WHERE chain_id = %s", (chain_id,)
        ).fetchone()
        return int(row[0]) if row else None

    def _require_current(self, conn: Any, chain_id: str) -> int:
        current = self._current_version(conn, chain_id)
        if current is None:
            raise NotFoundError(
                "chain",
                chain_id,
                f"unknown chain id {chain_id!r} in the registry; "
                "`chainmap registry list` (or GET /api/v1/chains) lists them",
            )
        return current

    @staticmethod
    def _check_match(chain_id: str, current: int, if_match: int | None) -> None:
        if if_match is not None and if_match != current:
            raise RegistryConflictError(
                f"chain {chain_id!r} is at version {current}, not {if_match}: someone changed "
                "it meanwhile; GET it again and reapply your change",
                current_version=current,
            )

    @staticmethod
    def _write(
        conn: Any,
        chain_id: str,
        definition: dict[str, Any] | None,
        author: str,
        comment: str,
        position: int | None,
    ) -> StoredChain:
        from psycopg.types.json import Json

        row = conn.execute(
            "SELECT coalesce(max(version), 0) + 1 FROM chainmap_chain_versions WHERE chain_id = %s",
            (chain_id,),
        ).fetchone()
        version = int(row[0])
        stored = conn.execute(
            "INSERT INTO chainmap_chain_versions "
            "(chain_id, version, definition, deleted, author, comment) "
            "VALUES (%s, %s, %s, %s, %s, %s) "
            "RETURNING chain_id, version, definition, deleted, author, comment, created_at",
            (
                chain_id,
                version,
                Json(definition) if definition is not None else None,
                definition is None,
                author,
                comment,
            ),
        ).fetchone()
        if definition is None:
            conn.execute("DELETE FROM chainmap_chain_current WHERE chain_id = %s", (chain_id,))
        else:
            conn.execute(
                "INSERT INTO chainmap_chain_current (chain_id, version, position) "
                "VALUES (%s, %s, coalesce(%s::integer, (SELECT coalesce(max(position), -1) + 1 "
                "FROM chainmap_chain_current))) "
                "ON CONFLICT (chain_id) DO UPDATE SET version = EXCLUDED.version, "
                "position = coalesce(%s::integer, chainmap_chain_current.position)",
                (chain_id, version, position, position),
            )
        conn.execute(
            "SELECT pg_notify(%s, %s)",
            (NOTIFY_CHANNEL, json.dumps({"chain_id": chain_id, "version": version})),
        )
        return _row(stored)
