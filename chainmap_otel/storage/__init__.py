"""The trace store and its schema: the ClickHouse connection (:mod:`.store`), the versioned
DDL (:mod:`.schema`), the ``otel_traces`` columns and their values (:mod:`.columns`), the
Arrow table format both writers insert (:mod:`.arrow`) and where serve advertises its API
for readers of an embedded store (:mod:`.advert`).

Nothing here imports the write path (:mod:`chainmap_otel.ingest`) or the analyses; the
modules are imported on first use, so importing this package loads no ClickHouse client.
"""
