-- Edges across traces: a CONSUMER span whose span links point to a PRODUCER span of another
-- trace (the messaging conventions for asynchronous consumers) is an edge from the producer's
-- service to the consumer's, connection_type messaging_system, one call per link, as the
-- servicegraph connector pairs links (contrib PR #48782). The edge's latency is the queue
-- wait: the consumer span's start minus the producer span's end (0 when clock skew puts the
-- consumer first); its client and server histograms are the producer's and the consumer's
-- durations, as for a paired edge. Failed = producer or consumer status Error. The edge counts
-- for the chains of both spans (a consumer's chain.ids came from the message's baggage, so
-- they are the producer's unless the producer's service does not tag).
-- Never in the edge rollup: topology.sql reads this part live for the whole window.
-- Bound: {link_start:Int64} / {link_end:Int64} (ns) the consumer starts read,
-- {link_lookback:Int64} (ns) how far before link_start a producer may start,
-- {wanted:Array(String)} ('' = all traffic), {latency_bounds_ns:Array(UInt64)}.
SELECT
    chain,
    p_service AS source,
    c_service AS target,
    'messaging_system' AS connection_type,
    'service' AS target_type,
    count() AS part_calls,
    countIf(c_failed OR p_failed) AS part_errors,
    quantilesTDigestState(0.5, 0.95, 0.99)(wait_ns) AS part_latency,
    min(c_start) AS part_first,
    max(c_start) AS part_last,
    sumMap(map(arrayFirst(b -> b >= p_duration, {latency_bounds_ns:Array(UInt64)}),
               toUInt64(1))) AS part_client_buckets,
    sum(toUInt128(p_duration)) AS part_client_sum,
    sumMap(map(arrayFirst(b -> b >= c_duration, {latency_bounds_ns:Array(UInt64)}),
               toUInt64(1))) AS part_server_buckets,
    sum(toUInt128(c_duration)) AS part_server_sum
FROM (
    SELECT
        c_service,
        c_start,
        c_duration,
        c_failed,
        p_service,
        p_duration,
        p_failed,
        toUInt64(greatest(c_start - p_end, 0)) AS wait_ns,
        arrayDistinct(arrayConcat(c_chains, p_chains)) AS chains
    FROM (
        SELECT
            toString(ServiceName) AS c_service,
            toUnixTimestamp64Nano(Timestamp) AS c_start,
            Duration AS c_duration,
            StatusCode IN ('Error', 'STATUS_CODE_ERROR') AS c_failed,
            arrayFilter(x -> x != '', splitByChar(',', SpanAttributes['chain.ids'])) AS c_chains,
            link.1 AS link_trace,
            link.2 AS link_span
        FROM {{db}}.otel_traces
        ARRAY JOIN arrayZip(`Links.TraceId`, `Links.SpanId`) AS link
        WHERE Timestamp >= fromUnixTimestamp64Nano({link_start:Int64})
          AND Timestamp < fromUnixTimestamp64Nano({link_end:Int64})
          AND SpanKind IN ('Consumer', 'SPAN_KIND_CONSUMER')
          AND link.1 != TraceId
    ) AS c
    INNER JOIN (
        SELECT
            TraceId AS p_trace,
            SpanId AS p_span,
            toString(ServiceName) AS p_service,
            Duration AS p_duration,
            toInt64(toUnixTimestamp64Nano(Timestamp) + Duration) AS p_end,
            StatusCode IN ('Error', 'STATUS_CODE_ERROR') AS p_failed,
            arrayFilter(x -> x != '', splitByChar(',', SpanAttributes['chain.ids'])) AS p_chains
        FROM {{db}}.otel_traces
        WHERE Timestamp >= fromUnixTimestamp64Nano({link_start:Int64} - {link_lookback:Int64})
          AND Timestamp < fromUnixTimestamp64Nano({link_end:Int64})
          AND SpanKind IN ('Producer', 'SPAN_KIND_PRODUCER')
    ) AS p ON p.p_trace = c.link_trace AND p.p_span = c.link_span
)
ARRAY JOIN arrayFilter(x -> has({wanted:Array(String)}, x), arrayPushFront(chains, '')) AS chain
GROUP BY chain, source, target, connection_type, target_type
