-- chainmap's edge rollup, second level: the rows of chainmap_edge_minute merged per hour, so a
-- long window reads a few rows per hour instead of per minute. Written by the rollup job
-- (chainmap_otel.analysis.rollups.edges) from the minute rows of hours wholly below the minute
-- level's watermark: Calls/Errors summed, Latency merged with quantilesTDigestMergeState,
-- FirstSeen/LastSeen min/max. Hour is the hour of trace start in UTC (Unix seconds divided
-- by 3600), whatever the server's time zone. Its progress is the rollup state `edges_hour`.
-- Readers merge it like the minute level, and may UNION ALL both (the same columns).

-- One row per (hour of trace start, chain set of the trace, edge) and classification.
CREATE TABLE IF NOT EXISTS "{{db}}"."chainmap_edge_hour{{local}}" {{on_cluster}} (
    Catalog UInt64 CODEC(ZSTD(1)),
    Hour DateTime CODEC(Delta, ZSTD(1)),
    Source LowCardinality(String) CODEC(ZSTD(1)),
    Target LowCardinality(String) CODEC(ZSTD(1)),
    ConnectionType LowCardinality(String) CODEC(ZSTD(1)),
    TargetType LowCardinality(String) CODEC(ZSTD(1)),
    ChainIds Array(LowCardinality(String)) CODEC(ZSTD(1)),
    Calls SimpleAggregateFunction(sum, UInt64) CODEC(ZSTD(1)),
    Errors SimpleAggregateFunction(sum, UInt64) CODEC(ZSTD(1)),
    Latency AggregateFunction(quantilesTDigest(0.5, 0.95, 0.99), UInt64),
    FirstSeen SimpleAggregateFunction(min, Int64) CODEC(ZSTD(1)),
    LastSeen SimpleAggregateFunction(max, Int64) CODEC(ZSTD(1))
) ENGINE = {{AggregatingMergeTree}}
PARTITION BY toDate(Hour)
ORDER BY (Catalog, Hour, Source, Target, ConnectionType, TargetType, ChainIds)
{{ttl Hour}}
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1;
