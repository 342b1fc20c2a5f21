-- Two changes to chainmap_chain_minute, whose table is emptied and views created anew, so
-- `chainmap schema apply` copies the stored spans into it again:
-- * The observed extent of each minute's entry rows: FirstSeen and LastSeen (the first and
--   last entry span start in the row). Rates are divided by the part of the window that has
--   data; until version 10 that part was counted in whole minutes, so a chain seen for 90 s
--   of a minute-rounded window read about half its true rate.
-- * Linked roots are no second entry: a root span with span links (the consumer of a message,
--   starting a trace of its own linked to the producer's span) carries the producer's chain
--   stack through the message's baggage; until version 10 chainmap_chain_minute_root_mv
--   counted it as an entry of those chains, so one chain instance crossing a queue counted
--   once per trace. Such a root now counts only the chains it enters itself (chain.entry_ids,
--   through chainmap_chain_minute_mv). Roots without links keep their inherited chains (a
--   caller that sent baggage without a trace context).

DROP VIEW IF EXISTS "{{db}}"."chainmap_chain_minute_mv{{local}}" {{on_cluster}};

DROP VIEW IF EXISTS "{{db}}"."chainmap_chain_minute_root_mv{{local}}" {{on_cluster}};

TRUNCATE TABLE IF EXISTS "{{db}}"."chainmap_chain_minute{{local}}" {{on_cluster}};

ALTER TABLE "{{db}}"."chainmap_chain_minute{{local}}" {{on_cluster}}
    ADD COLUMN IF NOT EXISTS FirstSeen SimpleAggregateFunction(min, DateTime64(9))
        CODEC(Delta, ZSTD(1)),
    ADD COLUMN IF NOT EXISTS LastSeen SimpleAggregateFunction(max, DateTime64(9))
        CODEC(Delta, ZSTD(1));

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
    max(Timestamp) AS LastSeen
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
           [toUInt64(1)]) AS LatencyBuckets,
    min(Timestamp) AS FirstSeen,
    max(Timestamp) AS LastSeen
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
        StatusCode IN ('Error', 'STATUS_CODE_ERROR') AS IsError
    FROM {{source}}
    ARRAY JOIN arrayFilter(x -> x != '' AND NOT (
            lower(SpanAttributes['chain.entry']) = 'true'
            AND has(splitByChar(',', SpanAttributes['chain.entry_ids']), x)),
        splitByChar(',', SpanAttributes['chain.ids'])) AS ChainId
    WHERE ParentSpanId = '' AND SpanAttributes['chain.ids'] != '' AND empty(`Links.SpanId`)
)
GROUP BY Minute, ChainId, ServiceName, SpanName, Route, Path, Method, Kind;
