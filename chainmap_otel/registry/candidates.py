"""Discovery candidates: proposals kept in the registry until someone promotes them.

A candidate is keyed by its trace shape (entry service, kind and operation), so running
``chainmap discover --save`` again refreshes the same candidate instead of adding one per
run; accepting one turns its proposed definition into a registry chain.
"""

from __future__ import annotations

from typing import Any

from chainmap_otel.errors import NotFoundError, QueryError
from chainmap_otel.registry.chains import ChainRegistry, StoredChain
from chainmap_otel.registry.postgres import RegistryDatabase

__all__ = ["accept_candidate", "list_candidates", "save_candidates"]


def _shape_key(proposal: dict[str, Any]) -> str:
    return f"{proposal['service']}|{proposal['kind']}|{proposal['entry']}"


def save_candidates(database: RegistryDatabase, found: Any) -> list[tuple[int, str, int]]:
    """Upsert ``found.proposals`` (an analysis ``Discovery``); (candidate id, proposal id, traces)."""
    from psycopg.types.json import Json

    saved = []
    with database.connection() as conn:
        for proposal in found.proposals:
            row = conn.execute(
                "INSERT INTO chainmap_discovery_candidates (shape_key, definition, traces) "
                "VALUES (%s, %s, %s) ON CONFLICT (shape_key) DO UPDATE SET "
                "definition = EXCLUDED.definition, traces = EXCLUDED.traces "
                "WHERE chainmap_discovery_candidates.status = 'proposed' RETURNING id",
                (_shape_key(proposal), Json(proposal["definition"]), int(proposal["traces"])),
            ).fetchone()
            if row is not None:
                saved.append((int(row[0]), str(proposal["id"]), int(proposal["traces"])))
    return saved


def list_candidates(database: RegistryDatabase) -> list[dict[str, Any]]:
    with database.connection() as conn:
        rows = conn.execute(
            "SELECT id, definition, traces, status, created_at, accepted_at "
            "FROM chainmap_discovery_candidates ORDER BY id"
        ).fetchall()
    return [
        {
            "id": int(r[0]),
            "definition": r[1],
            "traces": int(r[2]),
            "status": r[3],
            "created_at": r[4].isoformat(),
            "accepted_at": r[5].isoformat() if r[5] else None,
        }
        for r in rows
    ]


def accept_candidate(
    registry: ChainRegistry, candidate_id: int, chain_id: str | None = None, author: str = ""
) -> StoredChain:
    """Create the candidate's chain (under ``chain_id`` if given) and mark it accepted."""
    with registry.database.connection() as conn:
        row = conn.execute(
            "SELECT definition, status FROM chainmap_discovery_candidates WHERE id = %s",
            (candidate_id,),
        ).fetchone()
    if row is None:
        raise NotFoundError(
            "discovery candidate",
            str(candidate_id),
            f"no discovery candidate {candidate_id}; `chainmap discover --save` saves them "
            "and prints their ids",
        )
    if row[1] == "accepted":
        raise QueryError(f"discovery candidate {candidate_id} was already accepted")
    definition = dict(row[0])
    if chain_id:
        definition["id"] = chain_id
    stored = registry.create(
        definition, author=author, comment=f"discovery candidate {candidate_id}"
    )
    with registry.database.connection() as conn:
        conn.execute(
            "UPDATE chainmap_discovery_candidates SET status = 'accepted', accepted_at = now() "
            "WHERE id = %s",
            (candidate_id,),
        )
    return stored
