-- Entries of spans tagged with chain.id/chain.ids but not chain.entry/chain.entry_ids (a
-- baggage span processor in another language, an older SDK, OTTL that sets only the ids):
-- the span where a chain first appears in a trace is its entry, i.e. the chain is in the
-- span's chain.ids and not in its parent's (or the span has no parent). Chains the span
-- names in chain.entry_ids are counted by chainmap_chain_minute_mv already and never here.
-- * Root spans: knowable per span, so a materialized view adds them to chainmap_chain_minute
--   as it adds tagged entries (every chain of a root's chain.ids first appears there).
-- * Other spans: the parent's tags are needed, which an insert-time view cannot see, so the
--   job chainmap_otel.analysis.rollups.entries rolls up closed minutes into
--   chainmap_inferred_entry_minute (same columns as chainmap_chain_minute; its progress is
--   the rollup state `entries`), and health pairs the minutes after its watermark live.
-- Readers (health) read both tables with the same merges.

CREATE MATERIALIZED VIEW IF NOT EXISTS "{{db}}"."chainmap_chain_minute_root_mv{{local}}" {{on_cluster}}
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
    ARRAY JOIN arrayFilter(x -> x != '' AND NOT (
            lower(SpanAttributes['chain.entry']) = 'true'
            AND has(splitByChar(',', SpanAttributes['chain.entry_ids']), x)),
        splitByChar(',', SpanAttributes['chain.ids'])) AS ChainId
    WHERE ParentSpanId = '' AND SpanAttributes['chain.ids'] != ''
)
GROUP BY Minute, ChainId, ServiceName, SpanName, Route, Method, Kind;

CREATE TABLE IF NOT EXISTS "{{db}}"."chainmap_inferred_entry_minute{{local}}" {{on_cluster}} (
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
