"""How topology names the nodes a CLIENT span without a server child leads to.

Two namings, chosen by ``CHAINMAP_SERVICEGRAPH_COMPAT`` (or the lists below, which the
OpenTelemetry Collector servicegraph connector calls the same):

* **chainmap's** (default): a CLIENT span carrying ``db.system``, ``db.system.name``,
  ``db.namespace`` or ``db.name`` is an edge to a **database** node named from
  ``peer.service``, else ``db.system`` (so ``postgresql``), else ``db.system.name``,
  ``db.namespace``, ``db.name``; any other CLIENT span is an edge to a **virtual** node named
  from ``peer.service``, else ``server.address``, else ``net.peer.name``, else (PRODUCER)
  ``messaging.system``, else ``db.name``, else ``unknown``.
* **the connector's** (``database_name_attributes``, default ``[db.name]``;
  ``virtual_node_peer_attributes``, default ``[peer.service, db.name, db.system]``): a CLIENT
  span with a non-empty attribute of ``database_name_attributes`` is an edge to the database
  node named by the first such attribute's **value**; any other CLIENT span without a server
  child is a virtual node named by the first non-empty attribute of
  ``virtual_node_peer_attributes``, else ``unknown``.

Setting either list (``CHAINMAP_SERVICEGRAPH_DATABASE_NAME_ATTRIBUTES``,
``CHAINMAP_SERVICEGRAPH_VIRTUAL_NODE_PEER_ATTRIBUTES``) applies the connector's rule with that
list; the other keeps its mode's rule. The naming is part of the edge rollup's fingerprint,
so rows rolled up under one naming are never read under another.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chainmap_otel import config
from chainmap_otel.analysis.membership import SqlParams

#: The connector's defaults (connector/servicegraphconnector config.go).
CONNECTOR_VIRTUAL_NODE_PEER_ATTRIBUTES = ("peer.service", "db.name", "db.system")
CONNECTOR_DATABASE_NAME_ATTRIBUTES = ("db.name",)
#: chainmap's richer naming (used when no list is configured).
DATABASE_TRIGGER_ATTRIBUTES = ("db.system", "db.system.name", "db.namespace", "db.name")
DATABASE_NAME_ATTRIBUTES = (
    "peer.service",
    "db.system",
    "db.system.name",
    "db.namespace",
    "db.name",
)
_MAX_ATTRIBUTES = 16


@dataclass(frozen=True)
class ServiceGraphNaming:
    """Node naming for client spans without a server child (see the module docstring).

    ``None`` for a list means chainmap's own rule for that kind of node.
    """

    virtual_node_peer_attributes: tuple[str, ...] | None = None
    database_name_attributes: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        for name, value in (
            ("virtual_node_peer_attributes", self.virtual_node_peer_attributes),
            ("database_name_attributes", self.database_name_attributes),
        ):
            if value is None:
                continue
            if len(value) > _MAX_ATTRIBUTES or any(
                not key or len(key) > 256 or "," in key for key in value
            ):
                raise ValueError(
                    f"{name} must list 0-{_MAX_ATTRIBUTES} attribute names of 1-256 "
                    f"characters without commas, not {list(value)!r}"
                )

    @classmethod
    def connector(cls) -> ServiceGraphNaming:
        """The servicegraph connector's defaults."""
        return cls(CONNECTOR_VIRTUAL_NODE_PEER_ATTRIBUTES, CONNECTOR_DATABASE_NAME_ATTRIBUTES)

    @classmethod
    def from_config(cls) -> ServiceGraphNaming:
        """From ``CHAINMAP_SERVICEGRAPH_*`` (a bad list is logged and the default used)."""
        base = cls.connector() if config.env_bool(config.CHAINMAP_SERVICEGRAPH_COMPAT) else cls()
        lists: list[tuple[str, ...] | None] = []
        for var, default in (
            (
                config.CHAINMAP_SERVICEGRAPH_VIRTUAL_NODE_PEER_ATTRIBUTES,
                base.virtual_node_peer_attributes,
            ),
            (config.CHAINMAP_SERVICEGRAPH_DATABASE_NAME_ATTRIBUTES, base.database_name_attributes),
        ):
            raw = config.env_str(var)
            value = tuple(k.strip() for k in raw.split(",") if k.strip()) if raw else default
            try:
                cls(value, None)
            except ValueError as exc:
                config.logger.warning("ignoring %s: %s", var.name, exc)
                value = default
            lists.append(value)
        return cls(lists[0], lists[1])

    def key(self) -> list[Any]:
        """What the edge rollup's fingerprint includes."""
        return [self.virtual_node_peer_attributes, self.database_name_attributes]

    def fragments(self, params: SqlParams) -> dict[str, str]:
        """``db_node``/``virtual_node`` SQL for ``trace_edges.sql`` (attribute names bound)."""
        return {"db_node": self._db_node(params), "virtual_node": self._virtual_node(params)}

    def _db_node(self, params: SqlParams) -> str:
        if self.database_name_attributes is None:
            trigger = " OR ".join(f"{_attr(params, k)} != ''" for k in DATABASE_TRIGGER_ATTRIBUTES)
            name = _first(params, DATABASE_NAME_ATTRIBUTES, "''")
        elif not self.database_name_attributes:
            return "''"
        else:
            trigger = " OR ".join(
                f"{_attr(params, k)} != ''" for k in self.database_name_attributes
            )
            name = _first(params, self.database_name_attributes, "''")
        return f"if(role = 1 AND ({trigger}), {name}, '')"

    def _virtual_node(self, params: SqlParams) -> str:
        if self.virtual_node_peer_attributes is None:
            producer = _attr(params, "messaging.system")
            name = (
                "multiIf("
                + ", ".join(
                    f"{_attr(params, k)} != '', {_attr(params, k)}"
                    for k in ("peer.service", "server.address", "net.peer.name")
                )
                + f", kind = 'producer' AND {producer} != '', {producer}"
                + f", {_attr(params, 'db.name')} != '', {_attr(params, 'db.name')}"
                + ", 'unknown')"
            )
        else:
            name = _first(params, self.virtual_node_peer_attributes, "'unknown'")
        return f"if(role = 1, {name}, '')"


def _attr(params: SqlParams, key: str) -> str:
    return f"SpanAttributes[{params.add(key)}]"


def _first(params: SqlParams, keys: tuple[str, ...], fallback: str) -> str:
    if not keys:
        return fallback
    reads = [_attr(params, k) for k in keys]
    return "multiIf(" + ", ".join(f"{r} != '', {r}" for r in reads) + f", {fallback})"
