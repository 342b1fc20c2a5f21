-- Inferred entries of non-root spans starting in [{inf_start:Int64}, {inf_end:Int64}) (ns).
-- Root spans are counted by chainmap_chain_minute's views. Two kinds of rows:
-- * a tagged span: a chain of its chain.ids that none of its tagged ancestors' chain.ids
--   holds and that the span does not name in chain.entry_ids (those are counted by
--   chainmap_chain_minute_mv, unless the Collector's OTTL set them: chain.tagged_by) begins
--   at that span: a row of that ChainId;
-- * an untagged span (a Node, Go or Java service without chainmap): its chains are the ones
--   the entry rules match at query time, so the row has ChainId '' and the span's rule
--   fields (Path included), and AboveChains, the chains its tagged ancestors hold.
-- Both keep AboveFields, the rule fields of the untagged ancestors: a chain their rules
-- match began above (analysis.membership.entered_chains_expression applies both at query
-- time). An untagged hop so neither creates a second entry nor hides one below it.
-- Per trace, each span's ancestors' chains and fields are gathered by pointer jumping (8
-- rounds, each doubling the reach: 256 levels), as trace_edges.sql walks a trace. Spans are
-- read from {inf_reach:Int64} ns before the range; an ancestor that is not stored or started
-- earlier than that counts as carrying no chain. Only traces with a non-root span in the
-- range are read. Rows have chainmap_inferred_entry_minute's columns, in its order (the job
-- inserts them there; health reads the part after its watermark live): the stored counts,
-- the span's environment and the weighted counts of schema 13 (the span's adjusted count).
SELECT
    toStartOfMinute(toDateTime(intDiv(span.1, 1000000000))) AS Minute,
    ChainId,
    span.2 AS ServiceName,
    span.3 AS SpanName,
    span.4 AS Route,
    if(ChainId = '', span.5, '') AS Path,  -- tagged rows: their chain is known
    span.6 AS Method,
    span.7 AS SpanKind,
    count() AS Calls,
    countIf(span.9) AS Errors,
    sum(span.8) AS DurationSum,
    quantilesTDigestState(0.5, 0.95, 0.99)(span.8) AS Latency,
    sumMap([toUInt16(greatest(0, floor(log2(greatest(span.8, 1000) / 1000) * 4)))],
           [toUInt64(1)]) AS LatencyBuckets,
    if(ChainId = '', arraySort(ancestors.1), CAST([], 'Array(String)')) AS AboveChains,
    arraySort(ancestors.2) AS AboveFields,
    span.12 AS Environment,
    sum(span.13) AS AdjustedCalls,
    sumIf(span.13, span.9) AS AdjustedErrors,
    sum(span.13 * span.8) AS AdjustedDurationSum,
    quantilesTDigestWeightedState(0.5, 0.95, 0.99)(span.8, span.14) AS AdjustedLatency,
    sumMap([toUInt16(greatest(0, floor(log2(greatest(span.8, 1000) / 1000) * 4)))],
           [span.13]) AS AdjustedLatencyBuckets,
    countIf(span.13 > 1) AS SampledCalls
FROM (
    SELECT
        TraceId,
        groupArray((start_ns, service, name, route, path, method, kind, Duration, failed,
                    entry_ids, candidate, environment, weight, digest_weight)) AS spans,
        groupArray(SpanId) AS ids,
        groupArray(chains) AS own,
        groupArray(fields) AS own_fields,
        groupArray(tagged) AS tagged_spans,
        arrayMap(p -> toUInt32(indexOf(ids, p)), groupArray(ParentSpanId)) AS parent_index,
        -- What each span's ancestors hold, one level up: the parent's chains and fields.
        arrayMap(i -> if(parent_index[i] > 0,
                         (own[parent_index[i]], own_fields[parent_index[i]]),
                         (CAST([], 'Array(String)'),
                          CAST([], 'Array(Tuple(String, String, String, String, String, String))'))),
                 arrayEnumerate(ids)) AS parents,
        -- Through untagged spans, every level: acc.1[i] holds what the ancestors up to
        -- 2^round levels above i hold, acc.2[i] the ancestor 2^round levels above.
        if(has(tagged_spans, 0),
           arrayFold((acc, round) -> (
               arrayMap(i -> if(acc.2[i] > 0,
                                (arrayDistinct(arrayConcat(acc.1[i].1, acc.1[acc.2[i]].1)),
                                 arrayDistinct(arrayConcat(acc.1[i].2, acc.1[acc.2[i]].2))),
                                acc.1[i]), arrayEnumerate(ids)),
               arrayMap(i -> if(acc.2[i] > 0, acc.2[acc.2[i]], toUInt32(0)),
                        arrayEnumerate(ids))),
               range(8),
               (parents, parent_index)).1,
           parents) AS above
    FROM (
        SELECT
            TraceId,
            SpanId,
            ParentSpanId,
            toUnixTimestamp64Nano(Timestamp) AS start_ns,
            toString(ServiceName) AS service,
            toString(SpanName) AS name,
            {{route_sql}} AS route,
            {{path_sql}} AS path,
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
            if(tagged = 1,
               CAST([], 'Array(Tuple(String, String, String, String, String, String))'),
               [(service, name, route, path, method, kind)]) AS fields,
            -- The Collector's marks are candidates (it sees one span at a time): checked here.
            if(lower(SpanAttributes['chain.entry']) = 'true'
                   AND SpanAttributes['chain.tagged_by'] != 'collector',
               splitByChar(',', SpanAttributes['chain.entry_ids']),
               CAST([], 'Array(String)')) AS entry_ids,
            ParentSpanId != ''
                AND Timestamp >= fromUnixTimestamp64Nano({inf_start:Int64}) AS candidate,
            {{environment_sql}} AS environment,
            {{weight_sql}} AS weight,
            {{digest_weight_sql}} AS digest_weight
        FROM {{db}}.otel_traces
        WHERE Timestamp >= fromUnixTimestamp64Nano({inf_start:Int64} - {inf_reach:Int64})
          AND Timestamp < fromUnixTimestamp64Nano({inf_end:Int64})
          AND TraceId IN (
              SELECT TraceId FROM {{db}}.otel_traces
              WHERE Timestamp >= fromUnixTimestamp64Nano({inf_start:Int64})
                AND Timestamp < fromUnixTimestamp64Nano({inf_end:Int64})
                AND TraceId != '' AND ParentSpanId != '')
    )
    GROUP BY TraceId
)
ARRAY JOIN spans AS span, own AS span_chains, tagged_spans AS span_tagged, above AS ancestors
ARRAY JOIN if(span_tagged = 1,
              arrayFilter(c -> NOT has(ancestors.1, c) AND NOT has(span.10, c), span_chains),
              ['']) AS ChainId
WHERE span.11
GROUP BY Minute, ChainId, ServiceName, SpanName, Route, Path, Method, SpanKind, AboveChains,
    AboveFields, Environment
