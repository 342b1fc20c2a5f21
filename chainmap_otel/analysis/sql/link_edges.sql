-- Edges across traces, one row per link: a CONSUMER span whose span links point to a PRODUCER
-- span of another trace (the messaging conventions for asynchronous consumers) is an edge from
-- the producer's service to the consumer's, connection_type messaging_system, one call per
-- link, as the servicegraph connector pairs links (contrib PR #48782). The edge's latency is
-- the queue wait: the consumer span's start minus the producer span's end (0 when clock skew
-- puts the consumer first); its client and server histograms are the producer's and the
-- consumer's durations, as for a paired edge. Failed = producer or consumer status Error. The
-- edge counts for the chains of both spans (a consumer's chain.ids came from the message's
-- baggage, so they are the producer's unless the producer's service does not tag). The
-- producer starts the edge: its weight (sampling adjusted count) and environment are the
-- edge's.
-- A link belongs to the minute its consumer starts in, and pairs with a producer starting at
-- most {link_lookback} ns before or after the consumer: a rule of the link alone, so a window
-- paired live and the edge rollup's slices (analysis.rollups.edges) find the same links.
-- Bound: the consumer ranges of analysis.rollups.edges.range_params ({head_start:Int64} /
-- {head_end:Int64}, {tail_start:Int64} / {tail_end:Int64}, ns, empty when start = end) and
-- {link_lookback:Int64} (ns).
SELECT
    c_start AS start_ns,
    p_service AS source,
    c_service AS target,
    toUInt8(c_failed OR p_failed) AS failed,
    toUInt64(greatest(c_start - p_end, 0)) AS wait_ns,
    p_duration,
    c_duration,
    arrayDistinct(arrayConcat(c_chains, p_chains)) AS chains,
    p_weight AS weight,
    p_environment AS environment
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
    WHERE ((Timestamp >= fromUnixTimestamp64Nano({head_start:Int64})
            AND Timestamp < fromUnixTimestamp64Nano({head_end:Int64}))
           OR (Timestamp >= fromUnixTimestamp64Nano({tail_start:Int64})
               AND Timestamp < fromUnixTimestamp64Nano({tail_end:Int64})))
      AND SpanKind IN ('Consumer', 'SPAN_KIND_CONSUMER')
      AND link.1 != TraceId
) AS c
INNER JOIN (
    SELECT
        TraceId AS p_trace,
        SpanId AS p_span,
        toString(ServiceName) AS p_service,
        Duration AS p_duration,
        toInt64(toUnixTimestamp64Nano(Timestamp)) AS p_start,
        toInt64(toUnixTimestamp64Nano(Timestamp) + Duration) AS p_end,
        StatusCode IN ('Error', 'STATUS_CODE_ERROR') AS p_failed,
        arrayFilter(x -> x != '', splitByChar(',', SpanAttributes['chain.ids'])) AS p_chains,
        if(TraceState = '', 1., toFloat64({{weight_sql}})) AS p_weight,
        toString({{environment_sql}}) AS p_environment
    FROM {{db}}.otel_traces
    WHERE ((Timestamp >= fromUnixTimestamp64Nano({head_start:Int64} - {link_lookback:Int64})
            AND Timestamp < fromUnixTimestamp64Nano({head_end:Int64} + {link_lookback:Int64}))
           OR (Timestamp >= fromUnixTimestamp64Nano({tail_start:Int64} - {link_lookback:Int64})
               AND Timestamp < fromUnixTimestamp64Nano({tail_end:Int64} + {link_lookback:Int64})))
      AND SpanKind IN ('Producer', 'SPAN_KIND_PRODUCER')
) AS p ON p.p_trace = c.link_trace AND p.p_span = c.link_span
WHERE p_start >= c_start - {link_lookback:Int64} AND p_start < c_start + {link_lookback:Int64}
