-- The rule fields of the aggregates, read as every other surface reads them
-- (chainmap_otel.tagging.fields, rendered into {{route_sql}}, {{path_sql}}, {{method_sql}}):
-- route = http.route, else url.path, else the path of http.target; path = url.path, else the
-- path of http.target (never the query string); method = http.request.method, else
-- http.method, upper-cased. Until version 8 the aggregates kept one Route (the raw
-- http.target, query included, when neither http.route nor url.path was set) and `path:` rules
-- were evaluated against the route template. The entry-span aggregates gain a Path column (in
-- their sorting key, so rows of different paths never merge) on the rows that need it: the
-- untagged root rows (ChainId ''), classified at query time; tagged rows, whose chain is
-- known, keep '' there and stay one row per operation. The per-trace tables gain RootPath.
-- The tables and their views are dropped and created anew, so `chainmap schema apply` copies
-- the stored spans into them again; the two rollups written from them (`entries`: inferred
-- entries, `traces`: merged traces) are emptied and their states removed, so the next
-- refresh rebuilds them from the oldest span. The tables views write keep version 6's insert
-- deduplication (non_replicated_deduplication_window).

DROP VIEW IF EXISTS "{{db}}"."chainmap_trace_summary_mv{{local}}" {{on_cluster}};

DROP VIEW IF EXISTS "{{db}}"."chainmap_chain_minute_mv{{local}}" {{on_cluster}};

DROP VIEW IF EXISTS "{{db}}"."chainmap_chain_minute_root_mv{{local}}" {{on_cluster}};

DROP TABLE IF EXISTS "{{db}}"."chainmap_trace_summary{{local}}" {{on_cluster}};

DROP TABLE IF EXISTS "{{db}}"."chainmap_chain_minute{{local}}" {{on_cluster}};

DROP TABLE IF EXISTS "{{db}}"."chainmap_inferred_entry_minute{{local}}" {{on_cluster}};

DROP TABLE IF EXISTS "{{db}}"."chainmap_trace_merged{{local}}" {{on_cluster}};

ALTER TABLE "{{db}}"."chainmap_rollup_state{{local}}" {{on_cluster}}
    DELETE WHERE Rollup IN ('entries', 'traces')
    SETTINGS mutations_sync = 2;

CREATE TABLE IF NOT EXISTS "{{db}}"."chainmap_trace_summary{{local}}" {{on_cluster}} (
    TraceId String CODEC(ZSTD(1)),
    Start SimpleAggregateFunction(min, DateTime64(9)) CODEC(Delta, ZSTD(1)),
    End SimpleAggregateFunction(max, DateTime64(9)) CODEC(Delta, ZSTD(1)),
    RootService SimpleAggregateFunction(max, String) CODEC(ZSTD(1)),
    RootName SimpleAggregateFunction(max, String) CODEC(ZSTD(1)),
    RootRoute SimpleAggregateFunction(max, String) CODEC(ZSTD(1)),
    RootPath SimpleAggregateFunction(max, String) CODEC(ZSTD(1)),
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
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1,
    non_replicated_deduplication_window = 1000;

CREATE MATERIALIZED VIEW IF NOT EXISTS "{{db}}"."chainmap_trace_summary_mv{{local}}" {{on_cluster}}
TO "{{db}}"."chainmap_trace_summary{{local}}"
AS SELECT
    TraceId,
    min(Timestamp) AS Start,
    max(Timestamp + toIntervalNanosecond(Duration)) AS End,
    max(if(ParentSpanId = '', toString(ServiceName), '')) AS RootService,
    max(if(ParentSpanId = '', toString(SpanName), '')) AS RootName,
    max(if(ParentSpanId = '', {{route_sql}}, '')) AS RootRoute,
    max(if(ParentSpanId = '', {{path_sql}}, '')) AS RootPath,
    max(if(ParentSpanId = '', {{method_sql}}, '')) AS RootMethod,
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

CREATE TABLE IF NOT EXISTS "{{db}}"."chainmap_chain_minute{{local}}" {{on_cluster}} (
    Minute DateTime CODEC(Delta, ZSTD(1)),
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
) ENGINE = {{AggregatingMergeTree}}
PARTITION BY toDate(Minute)
ORDER BY (ChainId, Minute, ServiceName, SpanName, Route, Method, SpanKind, Path)
{{ttl Minute}}
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1,
    non_replicated_deduplication_window = 1000;

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
           [toUInt64(1)]) AS LatencyBuckets
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
        Duration,
        StatusCode IN ('Error', 'STATUS_CODE_ERROR') AS IsError
    FROM {{source}}
    ARRAY JOIN if(
        lower(SpanAttributes['chain.entry']) = 'true' AND SpanAttributes['chain.entry_ids'] != '',
        arrayFilter(x -> x != '', splitByChar(',', SpanAttributes['chain.entry_ids'])),
        if(ParentSpanId = '' AND SpanAttributes['chain.ids'] = '', [''], [])) AS ChainId
    WHERE lower(SpanAttributes['chain.entry']) = 'true' OR ParentSpanId = ''
)
GROUP BY Minute, ChainId, ServiceName, SpanName, Route, Path, Method, Kind;

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
           [toUInt64(1)]) AS LatencyBuckets
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
        Duration,
        StatusCode IN ('Error', 'STATUS_CODE_ERROR') AS IsError
    FROM {{source}}
    ARRAY JOIN arrayFilter(x -> x != '' AND NOT (
            lower(SpanAttributes['chain.entry']) = 'true'
            AND has(splitByChar(',', SpanAttributes['chain.entry_ids']), x)),
        splitByChar(',', SpanAttributes['chain.ids'])) AS ChainId
    WHERE ParentSpanId = '' AND SpanAttributes['chain.ids'] != ''
)
GROUP BY Minute, ChainId, ServiceName, SpanName, Route, Path, Method, Kind;

CREATE TABLE IF NOT EXISTS "{{db}}"."chainmap_inferred_entry_minute{{local}}" {{on_cluster}} (
    Minute DateTime CODEC(Delta, ZSTD(1)),
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
) ENGINE = {{AggregatingMergeTree}}
PARTITION BY toDate(Minute)
ORDER BY (ChainId, Minute, ServiceName, SpanName, Route, Method, SpanKind, Path)
{{ttl Minute}}
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1;

CREATE TABLE IF NOT EXISTS "{{db}}"."chainmap_trace_merged{{local}}" {{on_cluster}} (
    TraceId String CODEC(ZSTD(1)),
    Start DateTime64(9) CODEC(Delta, ZSTD(1)),
    DurationNs UInt64 CODEC(ZSTD(1)),
    RootService LowCardinality(String) CODEC(ZSTD(1)),
    RootName LowCardinality(String) CODEC(ZSTD(1)),
    RootRoute LowCardinality(String) CODEC(ZSTD(1)),
    RootPath String CODEC(ZSTD(1)),
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
