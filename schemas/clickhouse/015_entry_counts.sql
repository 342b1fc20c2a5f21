-- Chain entries counted in the services before sampling (the distro's chainmap.chain.entries
-- counter and chainmap.chain.entry.duration histogram, received on /v1/metrics), so a
-- chain's numbers stay exact when traces are sampled. Written only by serve's metrics
-- receiver (chainmap_otel.ingest.entry_counts), one row per accepted data point:
-- * Entries, Errors, DurationCount, DurationSumMs, DurationBuckets (bucket upper bound in ms,
--   inf for the last, -> count) are deltas: a delta point's own values, a cumulative point's
--   increase over the previous point of its series. Readers sum them per Minute.
-- * A cumulative point also keeps what it said (Series, SeriesStart, PointTime, Total,
--   TotalSum, TotalBounds, TotalBuckets), so the next point's increase is computed from the
--   stored table after a serve restart too (Series = 0 for delta points).

CREATE TABLE IF NOT EXISTS "{{db}}"."chainmap_entry_counts{{local}}" {{on_cluster}} (
    Minute DateTime CODEC(Delta, ZSTD(1)),
    ChainId LowCardinality(String) CODEC(ZSTD(1)),
    ServiceName LowCardinality(String) CODEC(ZSTD(1)),
    Environment LowCardinality(String) CODEC(ZSTD(1)),
    Entries UInt64 CODEC(ZSTD(1)),
    Errors UInt64 CODEC(ZSTD(1)),
    DurationCount UInt64 CODEC(ZSTD(1)),
    DurationSumMs Float64 CODEC(ZSTD(1)),
    DurationBuckets Map(Float64, UInt64) CODEC(ZSTD(1)),
    Series UInt64 CODEC(ZSTD(1)),
    SeriesStart DateTime64(9) CODEC(ZSTD(1)),
    PointTime DateTime64(9) CODEC(Delta, ZSTD(1)),
    Total UInt64 CODEC(ZSTD(1)),
    TotalSum Float64 CODEC(ZSTD(1)),
    TotalBounds Array(Float64) CODEC(ZSTD(1)),
    TotalBuckets Array(UInt64) CODEC(ZSTD(1)),
    INDEX series_idx Series TYPE bloom_filter GRANULARITY 4
) ENGINE = {{MergeTree}}
PARTITION BY toDate(Minute)
ORDER BY (ChainId, Minute, ServiceName, Environment)
{{ttl Minute}}
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1;
