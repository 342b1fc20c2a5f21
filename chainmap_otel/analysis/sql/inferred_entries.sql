-- Inferred entries of non-root tagged spans starting in [{inf_start:Int64}, {inf_end:Int64})
-- (ns): a chain of a span's chain.ids that none of its ancestors' chain.ids holds and that
-- the span does not name in chain.entry_ids (those are counted by chainmap_chain_minute_mv)
-- begins at that span. Root spans are counted by chainmap_chain_minute_root_mv. Ancestors
-- are looked for through untagged spans (a Node, Go or Java service without a baggage span
-- processor): such a hop carries no chain.ids but neither hides its ancestors' chains nor
-- makes a second entry below it. Per trace, each span's ancestors' chains are gathered by
-- pointer jumping (8 rounds, each doubling the reach: 256 levels), as trace_edges.sql walks
-- a trace. Spans are read from {inf_reach:Int64} ns before the range; an ancestor that is
-- not stored or started earlier than that counts as carrying no chain. Only traces with a
-- tagged non-root span in the range are read. Rows have chainmap_chain_minute's columns
-- (the job inserts them into chainmap_inferred_entry_minute; health reads the part after
-- its watermark live).
SELECT
    toStartOfMinute(toDateTime(intDiv(span.1, 1000000000))) AS Minute,
    ChainId,
    span.2 AS ServiceName,
    span.3 AS SpanName,
    span.4 AS Route,
    '' AS Path,  -- tagged rows: their chain is known, no path rule reads them
    span.6 AS Method,
    span.7 AS SpanKind,
    count() AS Calls,
    countIf(span.9) AS Errors,
    sum(span.8) AS DurationSum,
    quantilesTDigestState(0.5, 0.95, 0.99)(span.8) AS Latency,
    sumMap([toUInt16(greatest(0, floor(log2(greatest(span.8, 1000) / 1000) * 4)))],
           [toUInt64(1)]) AS LatencyBuckets
FROM (
    SELECT
        TraceId,
        groupArray((start_ns, service, name, route, '', method, kind, Duration, failed,
                    entry_ids, candidate)) AS spans,
        groupArray(SpanId) AS ids,
        groupArray(chains) AS own,
        groupArray(tagged) AS tagged_spans,
        arrayMap(p -> toUInt32(indexOf(ids, p)), groupArray(ParentSpanId)) AS parent_index,
        -- The chains of each span's ancestors: acc.1[i] holds those of the ancestors up to
        -- 2^round levels above i, acc.2[i] the ancestor 2^round levels above.
        if(has(tagged_spans, 0),
           arrayFold((acc, round) -> (
               arrayMap(i -> if(acc.2[i] > 0,
                                arrayDistinct(arrayConcat(acc.1[i], acc.1[acc.2[i]])),
                                acc.1[i]), arrayEnumerate(ids)),
               arrayMap(i -> if(acc.2[i] > 0, acc.2[acc.2[i]], toUInt32(0)),
                        arrayEnumerate(ids))),
               range(8),
               (arrayMap(i -> if(parent_index[i] > 0, own[parent_index[i]],
                                 CAST([], 'Array(String)')), arrayEnumerate(ids)),
                parent_index)).1,
           arrayMap(i -> if(parent_index[i] > 0, own[parent_index[i]],
                            CAST([], 'Array(String)')), arrayEnumerate(ids))) AS above
    FROM (
        SELECT
            TraceId,
            SpanId,
            ParentSpanId,
            toUnixTimestamp64Nano(Timestamp) AS start_ns,
            toString(ServiceName) AS service,
            toString(SpanName) AS name,
            {{route_sql}} AS route,
            {{method_sql}} AS method,
            transform(toString(SpanKind),
                ['SPAN_KIND_UNSPECIFIED', 'SPAN_KIND_INTERNAL', 'SPAN_KIND_SERVER',
                 'SPAN_KIND_CLIENT', 'SPAN_KIND_PRODUCER', 'SPAN_KIND_CONSUMER'],
                ['Unspecified', 'Internal', 'Server', 'Client', 'Producer', 'Consumer'],
                toString(SpanKind)) AS kind,
            Duration,
            StatusCode IN ('Error', 'STATUS_CODE_ERROR') AS failed,
            toUInt8(SpanAttributes['chain.ids'] != '') AS tagged,
            arrayFilter(x -> x != '', splitByChar(',', SpanAttributes['chain.ids'])) AS chains,
            if(lower(SpanAttributes['chain.entry']) = 'true',
               splitByChar(',', SpanAttributes['chain.entry_ids']),
               CAST([], 'Array(String)')) AS entry_ids,
            tagged = 1 AND ParentSpanId != ''
                AND Timestamp >= fromUnixTimestamp64Nano({inf_start:Int64}) AS candidate
        FROM {{db}}.otel_traces
        WHERE Timestamp >= fromUnixTimestamp64Nano({inf_start:Int64} - {inf_reach:Int64})
          AND Timestamp < fromUnixTimestamp64Nano({inf_end:Int64})
          AND TraceId IN (
              SELECT TraceId FROM {{db}}.otel_traces
              WHERE Timestamp >= fromUnixTimestamp64Nano({inf_start:Int64})
                AND Timestamp < fromUnixTimestamp64Nano({inf_end:Int64})
                AND TraceId != '' AND ParentSpanId != ''
                AND SpanAttributes['chain.ids'] != '')
    )
    GROUP BY TraceId
)
ARRAY JOIN spans AS span, own AS span_chains, above AS ancestors_chains
ARRAY JOIN arrayFilter(c -> NOT has(ancestors_chains, c) AND NOT has(span.10, c), span_chains)
    AS ChainId
WHERE span.11
GROUP BY Minute, ChainId, ServiceName, SpanName, Route, Path, Method, SpanKind
