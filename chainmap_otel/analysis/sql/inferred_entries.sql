-- Inferred entries of non-root spans starting in [{inf_start:Int64}, {inf_end:Int64}) (ns):
-- a chain of a span's chain.ids that its parent's chain.ids lacks and that the span does not
-- name in chain.entry_ids (those are counted by chainmap_chain_minute_mv) begins at that span.
-- Root spans are counted by chainmap_chain_minute_root_mv (schema 005). Without a JOIN: every
-- tagged span is a parent row keyed on its SpanId and, when it starts in the range and has
-- a parent, a child row keyed on its ParentSpanId, so a (TraceId, key) group holds one
-- parent and its children. Parents are read from {inf_reach:Int64} ns before the range; a
-- parent that is not stored, not tagged or started earlier than that counts as carrying no
-- chain. Rows have chainmap_chain_minute's columns (the job inserts them into
-- chainmap_inferred_entry_minute; health reads the part after its watermark live).
SELECT
    toStartOfMinute(toDateTime(intDiv(child.1, 1000000000))) AS Minute,
    ChainId,
    child.2 AS ServiceName,
    child.3 AS SpanName,
    child.4 AS Route,
    child.5 AS Method,
    child.6 AS SpanKind,
    count() AS Calls,
    countIf(child.8) AS Errors,
    sum(child.7) AS DurationSum,
    quantilesTDigestState(0.5, 0.95, 0.99)(child.7) AS Latency,
    sumMap([toUInt16(greatest(0, floor(log2(greatest(child.7, 1000) / 1000) * 4)))],
           [toUInt64(1)]) AS LatencyBuckets
FROM (
    SELECT
        TraceId,
        key,
        anyIf(chains, is_parent = 1) AS parent_chains,
        groupArrayIf((start_ns, service, name, route, method, kind, Duration, failed, chains,
                      entry_ids), is_parent = 0) AS children
    FROM (
        SELECT
            TraceId,
            is_parent,
            if(is_parent = 1, SpanId, ParentSpanId) AS key,
            toUnixTimestamp64Nano(Timestamp) AS start_ns,
            toString(ServiceName) AS service,
            toString(SpanName) AS name,
            multiIf(
                SpanAttributes['http.route'] != '', SpanAttributes['http.route'],
                SpanAttributes['url.path'] != '', SpanAttributes['url.path'],
                SpanAttributes['http.target']) AS route,
            if(SpanAttributes['http.request.method'] != '', SpanAttributes['http.request.method'],
               SpanAttributes['http.method']) AS method,
            transform(toString(SpanKind),
                ['SPAN_KIND_UNSPECIFIED', 'SPAN_KIND_INTERNAL', 'SPAN_KIND_SERVER',
                 'SPAN_KIND_CLIENT', 'SPAN_KIND_PRODUCER', 'SPAN_KIND_CONSUMER'],
                ['Unspecified', 'Internal', 'Server', 'Client', 'Producer', 'Consumer'],
                toString(SpanKind)) AS kind,
            Duration,
            StatusCode IN ('Error', 'STATUS_CODE_ERROR') AS failed,
            arrayFilter(x -> x != '', splitByChar(',', SpanAttributes['chain.ids'])) AS chains,
            if(lower(SpanAttributes['chain.entry']) = 'true',
               splitByChar(',', SpanAttributes['chain.entry_ids']),
               CAST([], 'Array(String)')) AS entry_ids
        FROM (
            SELECT * FROM {{db}}.otel_traces
            WHERE Timestamp >= fromUnixTimestamp64Nano({inf_start:Int64} - {inf_reach:Int64})
              AND Timestamp < fromUnixTimestamp64Nano({inf_end:Int64})
              AND TraceId != '' AND SpanAttributes['chain.ids'] != ''
        )
        ARRAY JOIN [toUInt8(1), toUInt8(0)] AS is_parent
        WHERE is_parent = 1
           OR (ParentSpanId != ''
               AND Timestamp >= fromUnixTimestamp64Nano({inf_start:Int64}))
    )
    GROUP BY TraceId, key
    HAVING notEmpty(children)
)
ARRAY JOIN children AS child
ARRAY JOIN arrayFilter(c -> NOT has(parent_chains, c) AND NOT has(child.10, c), child.9)
    AS ChainId
GROUP BY Minute, ChainId, ServiceName, SpanName, Route, Method, SpanKind
