-- chainmap's edge rollup: service-graph edges per minute, written by a rollup job, not by a
-- materialized view. An edge needs both spans of a client/server pair, and the client span
-- usually arrives after its server child, so an insert-time view cannot pair them; the job
-- (chainmap_otel.analysis.rollups.edges) runs the same pairing SQL as live topology over closed time
-- slices and inserts the result here. Rows are keyed by the classification they were made
-- with (Catalog: a fingerprint of the chain rules), because untagged spans are classified
-- with the rules at pairing time.
-- Readers merge: sum(Calls), sum(Errors), quantilesTDigestMerge(0.5, 0.95, 0.99)(Latency),
-- min(FirstSeen), max(LastSeen), grouping by the key columns they need.

-- One row per (minute of trace start, chain set of the trace, edge) and classification.
CREATE TABLE IF NOT EXISTS "{{db}}"."chainmap_edge_minute{{local}}" {{on_cluster}} (
    Catalog UInt64 CODEC(ZSTD(1)),
    Minute DateTime CODEC(Delta, ZSTD(1)),
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
PARTITION BY toDate(Minute)
ORDER BY (Catalog, Minute, Source, Target, ConnectionType, TargetType, ChainIds)
{{ttl Minute}}
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1;

-- Progress of each rollup and classification: the rollup covers trace starts in
-- [Since, Watermark) (Unix ns, whole minutes). Pending > Watermark while a slice is being
-- inserted; a job that finds it so after a crash deletes that slice's rows and redoes it.
CREATE TABLE IF NOT EXISTS "{{db}}"."chainmap_rollup_state{{local}}" {{on_cluster}} (
    Rollup LowCardinality(String),
    Catalog UInt64,
    Since SimpleAggregateFunction(min, Int64),
    Watermark SimpleAggregateFunction(max, Int64),
    Pending SimpleAggregateFunction(max, Int64),
    Updated SimpleAggregateFunction(max, DateTime)
) ENGINE = {{AggregatingMergeTree}}
ORDER BY (Rollup, Catalog);
