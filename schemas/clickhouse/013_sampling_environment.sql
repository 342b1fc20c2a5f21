-- Sampling and environments, for the per-minute entry tables (chainmap_chain_minute and
-- chainmap_inferred_entry_minute):
-- * Environment: the entry span's deployment environment ({{environment_sql}}: the resource's
--   deployment.environment.name, else deployment.environment; '' when neither is set), in the
--   sorting key, so rows of different environments never merge; readers filter on it.
-- * The weighted aggregates next to the stored ones (which stay: surfaces show both what is
--   stored and what it estimates): each entry span counts its OTEP 235 adjusted count
--   ({{weight_sql}}: 1/p from tracestate's ot=th, 1 without one). AdjustedCalls,
--   AdjustedErrors and AdjustedDurationSum are Float64 sums of that weight;
--   AdjustedLatencyBuckets sums it per quarter-power-of-two bucket (as LatencyBuckets counts);
--   AdjustedLatency is a weighted t-digest, whose weight must be an integer: the adjusted
--   count times 1000, rounded, at most 2^32 - 1 ({{digest_weight_sql}},
--   chainmap_otel.tagging.sampling.DIGEST_WEIGHT_SCALE; the scale cancels out of every
--   quantile). SampledCalls counts the stored entry rows whose weight is above 1 (they carried
--   a sampling threshold): 0 means the rows are the unsampled truth and readers take the
--   stored numbers as they are. Readers merge: sum over the Adjusted* sums and SampledCalls,
--   quantilesTDigestWeightedMerge(0.5, 0.95, 0.99)(AdjustedLatency),
--   sumMap(AdjustedLatencyBuckets).
-- Both tables are emptied; chainmap_chain_minute's views are created anew, so `chainmap
-- schema apply` copies the stored spans into it again (the views list the table's columns in
-- its order: the copy inserts by position), and the rollup `entries` (which
-- writes chainmap_inferred_entry_minute, sql/inferred_entries.sql) loses its state, so the
-- next refresh rebuilds it from the oldest span.

DROP VIEW IF EXISTS "{{db}}"."chainmap_chain_minute_mv{{local}}" {{on_cluster}};

DROP VIEW IF EXISTS "{{db}}"."chainmap_chain_minute_root_mv{{local}}" {{on_cluster}};

TRUNCATE TABLE IF EXISTS "{{db}}"."chainmap_chain_minute{{local}}" {{on_cluster}};

TRUNCATE TABLE IF EXISTS "{{db}}"."chainmap_inferred_entry_minute{{local}}" {{on_cluster}};

ALTER TABLE "{{db}}"."chainmap_rollup_state{{local}}" {{on_cluster}}
    DELETE WHERE Rollup = 'entries'
    SETTINGS mutations_sync = 2;

ALTER TABLE "{{db}}"."chainmap_chain_minute{{local}}" {{on_cluster}}
    ADD COLUMN IF NOT EXISTS Environment LowCardinality(String) CODEC(ZSTD(1)),
    ADD COLUMN IF NOT EXISTS AdjustedCalls SimpleAggregateFunction(sum, Float64) CODEC(ZSTD(1)),
    ADD COLUMN IF NOT EXISTS AdjustedErrors SimpleAggregateFunction(sum, Float64) CODEC(ZSTD(1)),
    ADD COLUMN IF NOT EXISTS AdjustedDurationSum SimpleAggregateFunction(sum, Float64)
        CODEC(ZSTD(1)),
    ADD COLUMN IF NOT EXISTS AdjustedLatency
        AggregateFunction(quantilesTDigestWeighted(0.5, 0.95, 0.99), UInt64, UInt64),
    ADD COLUMN IF NOT EXISTS AdjustedLatencyBuckets
        SimpleAggregateFunction(sumMap, Tuple(Array(UInt16), Array(Float64))) CODEC(ZSTD(1)),
    ADD COLUMN IF NOT EXISTS SampledCalls SimpleAggregateFunction(sum, UInt64) CODEC(ZSTD(1)),
    MODIFY ORDER BY (ChainId, Minute, ServiceName, SpanName, Route, Method, SpanKind, Path,
        Environment);

ALTER TABLE "{{db}}"."chainmap_inferred_entry_minute{{local}}" {{on_cluster}}
    ADD COLUMN IF NOT EXISTS Environment LowCardinality(String) CODEC(ZSTD(1)),
    ADD COLUMN IF NOT EXISTS AdjustedCalls SimpleAggregateFunction(sum, Float64) CODEC(ZSTD(1)),
    ADD COLUMN IF NOT EXISTS AdjustedErrors SimpleAggregateFunction(sum, Float64) CODEC(ZSTD(1)),
    ADD COLUMN IF NOT EXISTS AdjustedDurationSum SimpleAggregateFunction(sum, Float64)
        CODEC(ZSTD(1)),
    ADD COLUMN IF NOT EXISTS AdjustedLatency
        AggregateFunction(quantilesTDigestWeighted(0.5, 0.95, 0.99), UInt64, UInt64),
    ADD COLUMN IF NOT EXISTS AdjustedLatencyBuckets
        SimpleAggregateFunction(sumMap, Tuple(Array(UInt16), Array(Float64))) CODEC(ZSTD(1)),
    ADD COLUMN IF NOT EXISTS SampledCalls SimpleAggregateFunction(sum, UInt64) CODEC(ZSTD(1)),
    MODIFY ORDER BY (ChainId, Minute, ServiceName, SpanName, Route, Method, SpanKind, Path,
        AboveChains, AboveFields, Environment);

CREATE MATERIALIZED VIEW IF NOT EXISTS "{{db}}"."chainmap_chain_minute_mv{{local}}" {{on_cluster}}
TO "{{db}}"."chainmap_chain_minute{{local}}"
AS SELECT
    Minute,
    ChainId,
    ServiceName,
    SpanName,
    Route,
    Path,
    Method,
    Kind AS SpanKind,
    count() AS Calls,
    countIf(IsError) AS Errors,
    sum(Duration) AS DurationSum,
    quantilesTDigestState(0.5, 0.95, 0.99)(Duration) AS Latency,
    sumMap([toUInt16(greatest(0, floor(log2(greatest(Duration, 1000) / 1000) * 4)))],
           [toUInt64(1)]) AS LatencyBuckets,
    min(Timestamp) AS FirstSeen,
    max(Timestamp) AS LastSeen,
    Environment,
    sum(Weight) AS AdjustedCalls,
    sumIf(Weight, IsError) AS AdjustedErrors,
    sum(Weight * Duration) AS AdjustedDurationSum,
    quantilesTDigestWeightedState(0.5, 0.95, 0.99)(Duration, DigestWeight) AS AdjustedLatency,
    sumMap([toUInt16(greatest(0, floor(log2(greatest(Duration, 1000) / 1000) * 4)))],
           [Weight]) AS AdjustedLatencyBuckets,
    countIf(Weight > 1) AS SampledCalls
FROM (
    SELECT
        toStartOfMinute(toDateTime(Timestamp)) AS Minute,
        ChainId,
        ServiceName,
        SpanName,
        {{route_sql}} AS Route,
        if(ChainId = '', {{path_sql}}, '') AS Path,
        {{method_sql}} AS Method,
        transform(toString(SpanKind),
            ['SPAN_KIND_UNSPECIFIED', 'SPAN_KIND_INTERNAL', 'SPAN_KIND_SERVER', 'SPAN_KIND_CLIENT',
             'SPAN_KIND_PRODUCER', 'SPAN_KIND_CONSUMER'],
            ['Unspecified', 'Internal', 'Server', 'Client', 'Producer', 'Consumer'],
            toString(SpanKind)) AS Kind,
        Timestamp,
        Duration,
        StatusCode IN ('Error', 'STATUS_CODE_ERROR') AS IsError,
        {{environment_sql}} AS Environment,
        {{weight_sql}} AS Weight,
        {{digest_weight_sql}} AS DigestWeight
    FROM {{source}}
    ARRAY JOIN if(
        lower(SpanAttributes['chain.entry']) = 'true' AND SpanAttributes['chain.entry_ids'] != ''
            AND (SpanAttributes['chain.tagged_by'] != 'collector' OR ParentSpanId = ''),
        arrayFilter(x -> x != '', splitByChar(',', SpanAttributes['chain.entry_ids'])),
        if(ParentSpanId = '' AND SpanAttributes['chain.ids'] = '', [''], [])) AS ChainId
    WHERE lower(SpanAttributes['chain.entry']) = 'true' OR ParentSpanId = ''
)
GROUP BY Minute, ChainId, ServiceName, SpanName, Route, Path, Method, Kind, Environment;

CREATE MATERIALIZED VIEW IF NOT EXISTS "{{db}}"."chainmap_chain_minute_root_mv{{local}}" {{on_cluster}}
TO "{{db}}"."chainmap_chain_minute{{local}}"
AS SELECT
    Minute,
    ChainId,
    ServiceName,
    SpanName,
    Route,
    Path,
    Method,
    Kind AS SpanKind,
    count() AS Calls,
    countIf(IsError) AS Errors,
    sum(Duration) AS DurationSum,
    quantilesTDigestState(0.5, 0.95, 0.99)(Duration) AS Latency,
    sumMap([toUInt16(greatest(0, floor(log2(greatest(Duration, 1000) / 1000) * 4)))],
           [toUInt64(1)]) AS LatencyBuckets,
    min(Timestamp) AS FirstSeen,
    max(Timestamp) AS LastSeen,
    Environment,
    sum(Weight) AS AdjustedCalls,
    sumIf(Weight, IsError) AS AdjustedErrors,
    sum(Weight * Duration) AS AdjustedDurationSum,
    quantilesTDigestWeightedState(0.5, 0.95, 0.99)(Duration, DigestWeight) AS AdjustedLatency,
    sumMap([toUInt16(greatest(0, floor(log2(greatest(Duration, 1000) / 1000) * 4)))],
           [Weight]) AS AdjustedLatencyBuckets,
    countIf(Weight > 1) AS SampledCalls
FROM (
    SELECT
        toStartOfMinute(toDateTime(Timestamp)) AS Minute,
        ChainId,
        ServiceName,
        SpanName,
        {{route_sql}} AS Route,
        '' AS Path,
        {{method_sql}} AS Method,
        transform(toString(SpanKind),
            ['SPAN_KIND_UNSPECIFIED', 'SPAN_KIND_INTERNAL', 'SPAN_KIND_SERVER', 'SPAN_KIND_CLIENT',
             'SPAN_KIND_PRODUCER', 'SPAN_KIND_CONSUMER'],
            ['Unspecified', 'Internal', 'Server', 'Client', 'Producer', 'Consumer'],
            toString(SpanKind)) AS Kind,
        Timestamp,
        Duration,
        StatusCode IN ('Error', 'STATUS_CODE_ERROR') AS IsError,
        {{environment_sql}} AS Environment,
        {{weight_sql}} AS Weight,
        {{digest_weight_sql}} AS DigestWeight
    FROM {{source}}
    ARRAY JOIN arrayFilter(x -> x != '' AND NOT (
            lower(SpanAttributes['chain.entry']) = 'true'
            AND has(splitByChar(',', SpanAttributes['chain.entry_ids']), x)),
        splitByChar(',', SpanAttributes['chain.ids'])) AS ChainId
    WHERE ParentSpanId = '' AND SpanAttributes['chain.ids'] != '' AND empty(`Links.SpanId`)
)
GROUP BY Minute, ChainId, ServiceName, SpanName, Route, Path, Method, Kind, Environment;
