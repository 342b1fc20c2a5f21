-- chainmap_chain_minute's rows merged per hour, so a long health window merges a few latency
-- states per hour and entry operation instead of sixty. Filled by a materialized view on
-- chainmap_chain_minute (a view on a view's target fires on every insert into it, the
-- minute table's own views' and a schema backfill's alike), so it always holds exactly what
-- the minute table holds, per hour: Calls, Errors, DurationSum and the Adjusted* sums summed,
-- Latency merged with quantilesTDigestMergeState, AdjustedLatency with
-- quantilesTDigestWeightedMergeState (the weighted t-digest, schema 13), the bucket maps
-- summed, FirstSeen/LastSeen min/max, SampledCalls summed. Hour is the hour of the entry
-- span's start in UTC (Unix seconds divided by 3600), whatever the server's time zone;
-- Environment is in the sorting key, as in the minute table. Its TTL counts from the hour's
-- last minute, so an hour is dropped with the minutes it merges, not an hour before them.
-- `chainmap schema apply` copies the minute rows already stored into it once (storage.schema:
-- a view reading another chainmap table is backfilled from that table's parts). A later
-- version that empties the minute table must empty this one with it.
-- Readers (chainmap_otel.analysis.entry_rows) read an hour here when the whole hour lies in
-- every window the query tallies, its minutes from chainmap_chain_minute otherwise.

CREATE TABLE IF NOT EXISTS "{{db}}"."chainmap_chain_hour{{local}}" {{on_cluster}} (
    Hour DateTime CODEC(Delta, ZSTD(1)),
    ChainId LowCardinality(String) CODEC(ZSTD(1)),
    ServiceName LowCardinality(String) CODEC(ZSTD(1)),
    SpanName LowCardinality(String) CODEC(ZSTD(1)),
    Route LowCardinality(String) CODEC(ZSTD(1)),
    Path String CODEC(ZSTD(1)),
    Method LowCardinality(String) CODEC(ZSTD(1)),
    SpanKind LowCardinality(String) CODEC(ZSTD(1)),
    Calls SimpleAggregateFunction(sum, UInt64) CODEC(ZSTD(1)),
    Errors SimpleAggregateFunction(sum, UInt64) CODEC(ZSTD(1)),
    DurationSum SimpleAggregateFunction(sum, UInt64) CODEC(ZSTD(1)),
    Latency AggregateFunction(quantilesTDigest(0.5, 0.95, 0.99), UInt64),
    LatencyBuckets SimpleAggregateFunction(sumMap, Tuple(Array(UInt16), Array(UInt64)))
        CODEC(ZSTD(1)),
    FirstSeen SimpleAggregateFunction(min, DateTime64(9)) CODEC(ZSTD(1)),
    LastSeen SimpleAggregateFunction(max, DateTime64(9)) CODEC(ZSTD(1)),
    Environment LowCardinality(String) CODEC(ZSTD(1)),
    AdjustedCalls SimpleAggregateFunction(sum, Float64) CODEC(ZSTD(1)),
    AdjustedErrors SimpleAggregateFunction(sum, Float64) CODEC(ZSTD(1)),
    AdjustedDurationSum SimpleAggregateFunction(sum, Float64) CODEC(ZSTD(1)),
    AdjustedLatency AggregateFunction(quantilesTDigestWeighted(0.5, 0.95, 0.99), UInt64, UInt64),
    AdjustedLatencyBuckets SimpleAggregateFunction(sumMap, Tuple(Array(UInt16), Array(Float64)))
        CODEC(ZSTD(1)),
    SampledCalls SimpleAggregateFunction(sum, UInt64) CODEC(ZSTD(1))
) ENGINE = {{AggregatingMergeTree}}
PARTITION BY toDate(Hour)
ORDER BY (ChainId, Hour, ServiceName, SpanName, Route, Method, SpanKind, Path, Environment)
{{ttl Hour + toIntervalSecond(3540)}}
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1,
    non_replicated_deduplication_window = 1000;

CREATE MATERIALIZED VIEW IF NOT EXISTS "{{db}}"."chainmap_chain_hour_mv{{local}}" {{on_cluster}}
TO "{{db}}"."chainmap_chain_hour{{local}}"
AS SELECT
    toDateTime(intDiv(toUnixTimestamp(Minute), 3600) * 3600) AS Hour,
    ChainId,
    ServiceName,
    SpanName,
    Route,
    Path,
    Method,
    SpanKind,
    sum(Calls) AS Calls,
    sum(Errors) AS Errors,
    sum(DurationSum) AS DurationSum,
    quantilesTDigestMergeState(0.5, 0.95, 0.99)(Latency) AS Latency,
    sumMap(LatencyBuckets) AS LatencyBuckets,
    min(FirstSeen) AS FirstSeen,
    max(LastSeen) AS LastSeen,
    Environment,
    sum(AdjustedCalls) AS AdjustedCalls,
    sum(AdjustedErrors) AS AdjustedErrors,
    sum(AdjustedDurationSum) AS AdjustedDurationSum,
    quantilesTDigestWeightedMergeState(0.5, 0.95, 0.99)(AdjustedLatency) AS AdjustedLatency,
    sumMap(AdjustedLatencyBuckets) AS AdjustedLatencyBuckets,
    sum(SampledCalls) AS SampledCalls
FROM "{{db}}"."chainmap_chain_minute{{local}}"
GROUP BY Hour, ChainId, ServiceName, SpanName, Route, Path, Method, SpanKind, Environment;
