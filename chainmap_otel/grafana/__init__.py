"""Grafana on chainmap's ClickHouse tables: dashboard SQL and dashboards from a chain catalog.

:mod:`~chainmap_otel.grafana.queries` writes the panel SQL (the analysis SQL with its
parameters replaced by literals and Grafana macros); :mod:`~chainmap_otel.grafana.dashboards`
builds the dashboard JSON the provisioning in ``grafana/`` loads.
"""

from __future__ import annotations
