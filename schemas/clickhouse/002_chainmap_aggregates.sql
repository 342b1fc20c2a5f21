-- chainmap's aggregates over otel_traces, fed by materialized views. They read the span
-- rows of both Collector generations ('SPAN_KIND_SERVER' / 'Server', 'STATUS_CODE_ERROR' /
-- 'Error') and store the current form. Rows that existed before these views are copied in
-- once by `chainmap schema apply` (the same SELECTs over {{source}}).
-- Readers merge: min/max/sum/groupUniqArrayArray over the SimpleAggregateFunction columns,
-- quantilesTDigestMerge(0.5, 0.95, 0.99)(Latency), sumMap(LatencyBuckets).

-- One row per trace (several per trace until parts merge): span extent, root span, chains.
CREATE TABLE IF NOT EXISTS "{{db}}"."chainmap_trace_summary{{local}}" {{on_cluster}} (
    TraceId String CODEC(ZSTD(1)),
    Start SimpleAggregateFunction(min, DateTime64(9)) CODEC(Delta, ZSTD(1)),
    End SimpleAggregateFunction(max, DateTime64(9)) CODEC(Delta, ZSTD(1)),
    RootService SimpleAggregateFunction(max, String) CODEC(ZSTD(1)),
    RootName SimpleAggregateFunction(max, String) CODEC(ZSTD(1)),
    RootRoute SimpleAggregateFunction(max, String) CODEC(ZSTD(1)),
    RootMethod SimpleAggregateFunction(max, String) CODEC(ZSTD(1)),
    RootKind SimpleAggregateFunction(max, String) CODEC(ZSTD(1)),
    RootStatus SimpleAggregateFunction(max, String) CODEC(ZSTD(1)),
    RootDuration SimpleAggregateFunction(max, UInt64) CODEC(ZSTD(1)),
    ChainIds SimpleAggregateFunction(groupUniqArrayArray, Array(String)) CODEC(ZSTD(1)),
    Services SimpleAggregateFunction(groupUniqArrayArray, Array(String)) CODEC(ZSTD(1)),
    SpanCount SimpleAggregateFunction(sum, UInt64) CODEC(ZSTD(1)),
    ErrorCount SimpleAggregateFunction(sum, UInt64) CODEC(ZSTD(1)),
    INDEX idx_start Start TYPE minmax GRANULARITY 1
) ENGINE = {{AggregatingMergeTree}}
PARTITION BY toDate(Start)
ORDER BY TraceId
{{ttl toDateTime(Start)}}
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1;

CREATE MATERIALIZED VIEW IF NOT EXISTS "{{db}}"."chainmap_trace_summary_mv{{local}}" {{on_cluster}}
TO "{{db}}"."chainmap_trace_summary{{local}}"
AS SELECT
    TraceId,
    min(Timestamp) AS Start,
    max(Timestamp + toIntervalNanosecond(Duration)) AS End,
    max(if(ParentSpanId = '', toString(ServiceName), '')) AS RootService,
    max(if(ParentSpanId = '', toString(SpanName), '')) AS RootName,
    max(if(ParentSpanId = '', multiIf(
        SpanAttributes['http.route'] != '', SpanAttributes['http.route'],
        SpanAttributes['url.path'] != '', SpanAttributes['url.path'],
        SpanAttributes['http.target']), '')) AS RootRoute,
    max(if(ParentSpanId = '', if(
        SpanAttributes['http.request.method'] != '', SpanAttributes['http.request.method'],
        SpanAttributes['http.method']), '')) AS RootMethod,
    max(if(ParentSpanId = '', transform(toString(SpanKind),
        ['SPAN_KIND_UNSPECIFIED', 'SPAN_KIND_INTERNAL', 'SPAN_KIND_SERVER', 'SPAN_KIND_CLIENT',
         'SPAN_KIND_PRODUCER', 'SPAN_KIND_CONSUMER'],
        ['Unspecified', 'Internal', 'Server', 'Client', 'Producer', 'Consumer'],
        toString(SpanKind)), '')) AS RootKind,
    max(if(ParentSpanId = '', transform(toString(StatusCode),
        ['STATUS_CODE_UNSET', 'STATUS_CODE_OK', 'STATUS_CODE_ERROR'],
        ['Unset', 'Ok', 'Error'],
        toString(StatusCode)), '')) AS RootStatus,
    max(if(ParentSpanId = '', Duration, 0)) AS RootDuration,
    groupUniqArrayArray(arrayFilter(x -> x != '',
        splitByChar(',', SpanAttributes['chain.ids']))) AS ChainIds,
    groupUniqArray(toString(ServiceName)) AS Services,
    count() AS SpanCount,
    countIf(StatusCode IN ('Error', 'STATUS_CODE_ERROR')) AS ErrorCount
FROM {{source}}
WHERE TraceId != ''
GROUP BY TraceId;

-- Per minute and chain: the chain's entry spans (one row per id in chain.entry_ids), and
-- the root spans of untagged traces under ChainId '' (classified at query time by
-- analysis.membership from ServiceName/SpanName/Route/Method with the chains' rules).
CREATE TABLE IF NOT EXISTS "{{db}}"."chainmap_chain_minute{{local}}" {{on_cluster}} (
    Minute DateTime CODEC(Delta, ZSTD(1)),
    ChainId LowCardinality(String) CODEC(ZSTD(1)),
    ServiceName LowCardinality(String) CODEC(ZSTD(1)),
    SpanName LowCardinality(String) CODEC(ZSTD(1)),
    Route LowCardinality(String) CODEC(ZSTD(1)),
    Method LowCardinality(String) CODEC(ZSTD(1)),
    SpanKind LowCardinality(String) CODEC(ZSTD(1)),
    Calls SimpleAggregateFunction(sum, UInt64) CODEC(ZSTD(1)),
    Errors SimpleAggregateFunction(sum, UInt64) CODEC(ZSTD(1)),
    DurationSum SimpleAggregateFunction(sum, UInt64) CODEC(ZSTD(1)),
    Latency AggregateFunction(quantilesTDigest(0.5, 0.95, 0.99), UInt64),
    LatencyBuckets SimpleAggregateFunction(sumMap, Tuple(Array(UInt16), Array(UInt64)))
) ENGINE = {{AggregatingMergeTree}}
PARTITION BY toDate(Minute)
ORDER BY (ChainId, Minute, ServiceName, SpanName, Route, Method, SpanKind)
{{ttl Minute}}
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1;

CREATE MATERIALIZED VIEW IF NOT EXISTS "{{db}}"."chainmap_chain_minute_mv{{local}}" {{on_cluster}}
TO "{{db}}"."chainmap_chain_minute{{local}}"
AS SELECT
    Minute,
    ChainId,
    ServiceName,
    SpanName,
    Route,
    Method,
    Kind AS SpanKind,
    count() AS Calls,
    countIf(IsError) AS Errors,
    sum(Duration) AS DurationSum,
    quantilesTDigestState(0.5, 0.95, 0.99)(Duration) AS Latency,
    sumMap([toUInt16(greatest(0, floor(log2(greatest(Duration, 1000) / 1000) * 4)))],
           [toUInt64(1)]) AS LatencyBuckets
FROM (
    SELECT
        toStartOfMinute(toDateTime(Timestamp)) AS Minute,
        ChainId,
        ServiceName,
        SpanName,
        multiIf(
            SpanAttributes['http.route'] != '', SpanAttributes['http.route'],
            SpanAttributes['url.path'] != '', SpanAttributes['url.path'],
            SpanAttributes['http.target']) AS Route,
        if(SpanAttributes['http.request.method'] != '', SpanAttributes['http.request.method'],
           SpanAttributes['http.method']) AS Method,
        transform(toString(SpanKind),
            ['SPAN_KIND_UNSPECIFIED', 'SPAN_KIND_INTERNAL', 'SPAN_KIND_SERVER', 'SPAN_KIND_CLIENT',
             'SPAN_KIND_PRODUCER', 'SPAN_KIND_CONSUMER'],
            ['Unspecified', 'Internal', 'Server', 'Client', 'Producer', 'Consumer'],
            toString(SpanKind)) AS Kind,
        Duration,
        StatusCode IN ('Error', 'STATUS_CODE_ERROR') AS IsError
    FROM {{source}}
    ARRAY JOIN if(
        lower(SpanAttributes['chain.entry']) = 'true' AND SpanAttributes['chain.entry_ids'] != '',
        arrayFilter(x -> x != '', splitByChar(',', SpanAttributes['chain.entry_ids'])),
        if(ParentSpanId = '' AND SpanAttributes['chain.ids'] = '', [''], [])) AS ChainId
    WHERE lower(SpanAttributes['chain.entry']) = 'true' OR ParentSpanId = ''
)
GROUP BY Minute, ChainId, ServiceName, SpanName, Route, Method, Kind;
