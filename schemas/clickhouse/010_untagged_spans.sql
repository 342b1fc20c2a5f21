-- Chains matched at query time below the root (the membership rule: a span belongs to the
-- chains of every ancestor-or-self; an untagged span's own chains are the ones the entry
-- rules match). Until version 9 only an untagged *root* span was classified by health and
-- trace search, so a chain entered at a Node, Go or Java service called by a tagged one was
-- drawn by topology but neither counted nor found.
-- * chainmap_trace_summary gains UntaggedFields: the rule fields of the trace's untagged
--   non-root spans (ServiceName, SpanName, Route, Path, Method, SpanKind; distinct), which
--   trace search classifies; chainmap_trace_merged keeps them per trace.
-- * chainmap_inferred_entry_minute gains AboveChains and AboveFields (what a span's tagged
--   and untagged ancestors hold), in its sorting key so rows of different ancestries never
--   merge; its rows now include untagged non-root spans (ChainId '').
-- * chainmap_chain_minute_mv no longer counts the entry marks the Collector's generated OTTL
--   sets below the root (`chain.tagged_by` = 'collector'): OTTL sees one span at a time, so a
--   rule matching a span and its descendant marks both; the entries rollup keeps the first
--   from the root down, as for spans tagged without `chain.entry`.
-- The summary and the chain-minute table are emptied and their views created anew, so
-- `chainmap schema apply` copies the stored spans into them again; the two rollups
-- (`entries`, `traces`) are emptied and their states removed, so the next refresh rebuilds
-- them from the oldest span.

DROP VIEW IF EXISTS "{{db}}"."chainmap_trace_summary_mv{{local}}" {{on_cluster}};

DROP VIEW IF EXISTS "{{db}}"."chainmap_chain_minute_mv{{local}}" {{on_cluster}};

DROP VIEW IF EXISTS "{{db}}"."chainmap_chain_minute_root_mv{{local}}" {{on_cluster}};

TRUNCATE TABLE IF EXISTS "{{db}}"."chainmap_chain_minute{{local}}" {{on_cluster}};

TRUNCATE TABLE IF EXISTS "{{db}}"."chainmap_trace_summary{{local}}" {{on_cluster}};

ALTER TABLE "{{db}}"."chainmap_trace_summary{{local}}" {{on_cluster}}
    ADD COLUMN IF NOT EXISTS UntaggedFields SimpleAggregateFunction(groupUniqArrayArray,
        Array(Tuple(String, String, String, String, String, String))) CODEC(ZSTD(1));

TRUNCATE TABLE IF EXISTS "{{db}}"."chainmap_inferred_entry_minute{{local}}" {{on_cluster}};

ALTER TABLE "{{db}}"."chainmap_inferred_entry_minute{{local}}" {{on_cluster}}
    ADD COLUMN IF NOT EXISTS AboveChains Array(LowCardinality(String)) CODEC(ZSTD(1)),
    ADD COLUMN IF NOT EXISTS AboveFields
        Array(Tuple(String, String, String, String, String, String)) CODEC(ZSTD(1)),
    MODIFY ORDER BY (ChainId, Minute, ServiceName, SpanName, Route, Method, SpanKind, Path,
        AboveChains, AboveFields);

TRUNCATE TABLE IF EXISTS "{{db}}"."chainmap_trace_merged{{local}}" {{on_cluster}};

ALTER TABLE "{{db}}"."chainmap_trace_merged{{local}}" {{on_cluster}}
    ADD COLUMN IF NOT EXISTS UntaggedFields
        Array(Tuple(String, String, String, String, String, String)) CODEC(ZSTD(1));

ALTER TABLE "{{db}}"."chainmap_rollup_state{{local}}" {{on_cluster}}
    DELETE WHERE Rollup IN ('entries', 'traces')
    SETTINGS mutations_sync = 2;

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
    max(if(ParentSpanId = '', Kind, '')) AS RootKind,
    max(if(ParentSpanId = '', transform(toString(StatusCode),
        ['STATUS_CODE_UNSET', 'STATUS_CODE_OK', 'STATUS_CODE_ERROR'],
        ['Unset', 'Ok', 'Error'],
        toString(StatusCode)), '')) AS RootStatus,
    max(if(ParentSpanId = '', Duration, 0)) AS RootDuration,
    groupUniqArrayArray(arrayFilter(x -> x != '',
        splitByChar(',', SpanAttributes['chain.ids']))) AS ChainIds,
    groupUniqArray(toString(ServiceName)) AS Services,
    count() AS SpanCount,
    countIf(StatusCode IN ('Error', 'STATUS_CODE_ERROR')) AS ErrorCount,
    groupUniqArrayIf((toString(ServiceName), toString(SpanName), {{route_sql}}, {{path_sql}},
        {{method_sql}}, Kind), ParentSpanId != '' AND SpanAttributes['chain.ids'] = '')
        AS UntaggedFields
FROM (
    SELECT *, transform(toString(SpanKind),
        ['SPAN_KIND_UNSPECIFIED', 'SPAN_KIND_INTERNAL', 'SPAN_KIND_SERVER', 'SPAN_KIND_CLIENT',
         'SPAN_KIND_PRODUCER', 'SPAN_KIND_CONSUMER'],
        ['Unspecified', 'Internal', 'Server', 'Client', 'Producer', 'Consumer'],
        toString(SpanKind)) AS Kind
    FROM {{source}}
)
WHERE TraceId != ''
GROUP BY TraceId;

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
        lower(SpanAttributes['chain.entry']) = 'true' AND SpanAttributes['chain.entry_ids'] != ''
            AND (SpanAttributes['chain.tagged_by'] != 'collector' OR ParentSpanId = ''),
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
