-- RED per operation of one chain's spans in the window: calls, errors and duration quantiles
-- per (service, operation, kind), totals and per step (the sparklines). Calls and errors sum
-- each span's adjusted count ({{weight_sql}}, OTEP 235; 1 for an unsampled span), quantiles
-- come from a weighted t-digest where a span was sampled, else from the plain one; the stored
-- spans and the sampled ones among them are counted too.
-- A span is the chain's when the chain is among the own chains of one of its
-- ancestors-or-self (the membership rule, analysis.membership): a tagged span's own chains
-- are its chain.ids stack, an untagged span's the chains whose entry rules match it
-- ({{classify}}, compiled for this one chain). The flag is carried down each trace by pointer
-- jumping (8 rounds, 256 levels), as trace_edges.sql carries chain sets; a trace whose spans
-- are all tagged needs no walk. Traces are cut at the window like topology's. Only spans of
-- the window's environment ({environment}, '' for all) count; membership is walked over
-- every span of the trace, so a chain entered in another environment still reaches them.
-- Bound: {start_ns}, {end_ns}, {environment}, {chain}, {series_start} and {step} (seconds), {limit} and
-- the classifier's parameters; {{db}} and {{classify}} are filled by analysis.sql.load_sql.
SELECT service, name, kind,
       sum(calls) AS total_calls,
       sum(errors) AS total_errors,
       if(sum(sampled) > 0, quantilesTDigestWeightedMerge(0.5, 0.95, 0.99)(weighted),
          quantilesTDigestMerge(0.5, 0.95, 0.99)(digest)) AS q,
       groupArray((bucket, calls, errors,
                   if(sampled > 0, finalizeAggregation(weighted)[2],
                      finalizeAggregation(digest)[2]))) AS steps,
       count() OVER () AS operations,
       sum(stored) AS total_stored,
       sum(sampled) AS total_sampled
FROM (
    SELECT span.1 AS service, span.2 AS name, span.3 AS kind,
           intDiv(toInt64(intDiv(span.6, 1000000000)) - {series_start:Int64}, {step:Int64}) AS bucket,
           sum(span.8) AS calls,
           sumIf(span.8, span.4 = 1) AS errors,
           count() AS stored,
           countIf(span.8 > 1) AS sampled,
           quantilesTDigestState(0.5, 0.95, 0.99)(span.5) AS digest,
           quantilesTDigestWeightedState(0.5, 0.95, 0.99)(span.5, span.9) AS weighted
    FROM (
        SELECT
            groupArray((service, name, kind, failed, Duration, start, in_environment, weight,
                        digest_weight)) AS spans,
            groupArray(SpanId) AS ids,
            groupArray(own) AS owns,
            if(has(groupArray(tagged), 0),
               arrayFold((acc, round) -> (
                   arrayMap(i -> acc.1[i] OR (acc.2[i] > 0 AND acc.1[acc.2[i]]), arrayEnumerate(ids)),
                   arrayMap(i -> if(acc.2[i] > 0, acc.2[acc.2[i]], toUInt32(0)), arrayEnumerate(ids))),
                   range(8),
                   (owns, arrayMap(p -> toUInt32(indexOf(ids, p)), groupArray(ParentSpanId)))).1,
               owns) AS member
        FROM (
            SELECT TraceId, SpanId, ParentSpanId,
                   toString(ServiceName) AS service,
                   toString(SpanName) AS name,
                   lower(replaceOne(toString(SpanKind), 'SPAN_KIND_', '')) AS kind,
                   toUInt8(StatusCode IN ('Error', 'STATUS_CODE_ERROR')) AS failed,
                   Duration,
                   toUnixTimestamp64Nano(Timestamp) AS start,
                   {{span_environment}} AS in_environment,
                   {{weight_sql}} AS weight,
                   {{digest_weight_sql}} AS digest_weight,
                   toUInt8(SpanAttributes['chain.ids'] != '') AS tagged,
                   toUInt8(if(tagged,
                              has(splitByChar(',', SpanAttributes['chain.ids']), {chain:String}),
                              has({{classify}}, {chain:String}))) AS own
            FROM (
                SELECT * FROM {{db}}.otel_traces
                WHERE Timestamp >= fromUnixTimestamp64Nano({start_ns:Int64})
                  AND Timestamp < fromUnixTimestamp64Nano({end_ns:Int64})
                  AND TraceId != ''
            )
        )
        GROUP BY TraceId
        HAVING has(owns, 1)
    )
    ARRAY JOIN spans AS span, member AS in_chain
    WHERE in_chain AND span.7
    GROUP BY service, name, kind, bucket
)
GROUP BY service, name, kind
ORDER BY total_calls DESC, service, name, kind
LIMIT {limit:UInt32}
