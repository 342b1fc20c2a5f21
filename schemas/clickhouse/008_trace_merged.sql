-- chainmap's merged traces: one row per trace that started in a closed time slice, so trace
-- search can order a long window's traces by duration (or start) without merging them first.
-- chainmap_trace_summary is filled at insert time, one row per trace and insert block, and its
-- rows of one trace merge only when their parts do; ordering by a trace's extent therefore
-- means grouping every trace of the window at query time. The rollup job
-- (chainmap_otel.analysis.rollups.traces) merges the summary rows of the traces that START in a
-- closed slice (rows read an hour either side, as trace search reads them: sql/trace_merge.sql)
-- and inserts the result here once; search reads these rows below the job's watermark and
-- merges the summary live above it. Sorted by duration: slowest first reads each day's part
-- from its end and stops at the search's limit (newest first reads the window's rows, and
-- its newest hour is live anyway). Written only by the job: plain MergeTree, a slice
-- interrupted by a crash is deleted and redone (rollup state `traces`).

CREATE TABLE IF NOT EXISTS "{{db}}"."chainmap_trace_merged{{local}}" {{on_cluster}} (
    TraceId String CODEC(ZSTD(1)),
    Start DateTime64(9) CODEC(Delta, ZSTD(1)),
    DurationNs UInt64 CODEC(ZSTD(1)),
    RootService LowCardinality(String) CODEC(ZSTD(1)),
    RootName LowCardinality(String) CODEC(ZSTD(1)),
    RootRoute LowCardinality(String) CODEC(ZSTD(1)),
    RootMethod LowCardinality(String) CODEC(ZSTD(1)),
    RootKind LowCardinality(String) CODEC(ZSTD(1)),
    ChainIds Array(LowCardinality(String)) CODEC(ZSTD(1)),
    Services Array(LowCardinality(String)) CODEC(ZSTD(1)),
    SpanCount UInt64 CODEC(ZSTD(1)),
    ErrorCount UInt64 CODEC(ZSTD(1))
) ENGINE = {{MergeTree}}
PARTITION BY toDate(Start)
ORDER BY (DurationNs, TraceId)
{{ttl toDateTime(Start)}}
SETTINGS index_granularity = 1024, ttl_only_drop_parts = 1;
