-- Edges across traces, one row per link: a CONSUMER span whose span links point to a PRODUCER
-- span of another trace (the messaging conventions for asynchronous consumers) is an edge from
-- the producer's service to the consumer's, connection_type messaging_system, one call per
-- link, as the servicegraph connector pairs links (contrib PR #48782). The edge's latency is
-- the queue wait: the consumer span's start minus the producer span's end (0 when clock skew
-- puts the consumer first); its client and server histograms are the producer's and the
-- consumer's durations, as for a paired edge. Failed = producer or consumer status Error. The
-- edge counts for the consumer's chain.ids (from the message's baggage, so the producer's
-- unless the producer's service does not tag) and the producer's chains: its chain.ids when
-- tagged, else the chains it belongs to by the membership rule in its own trace (its entry
-- rules' matches plus its ancestors' own chains, member_chains.sql with {{classify}}), as
-- linked_chains.sql gives them to an untagged consumer. The producer starts the edge: its
-- weight (sampling adjusted count) and environment are the edge's.
-- Cost: the rule walk reads only the traces of untagged producer spans some consumer of the
-- ranges links to (`members`, found by TraceId through the bloom filter index); where every
-- linked producer is tagged no trace is walked.
-- A link belongs to the minute its consumer starts in, and pairs with a producer starting at
-- most {link_lookback} ns before or after the consumer: a rule of the link alone, so a window
-- paired live and the edge rollup's slices (analysis.rollups.edges) find the same links.
-- Bound: the consumer ranges of analysis.rollups.edges.range_params ({head_start:Int64} /
-- {head_end:Int64}, {tail_start:Int64} / {tail_end:Int64}, ns, empty when start = end) and
-- {link_lookback:Int64} (ns), and the rules' parameters ({{classify}}).
WITH consumers AS (
    SELECT
        toString(ServiceName) AS c_service,
        toInt64(toUnixTimestamp64Nano(Timestamp)) AS c_start,
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
      AND `Links.TraceId.size0` > 0
      AND SpanKind IN ('Consumer', 'SPAN_KIND_CONSUMER')
      AND link.1 != TraceId
),
-- The untagged producer spans linked to, for member_chains.sql: the linking consumers'
-- earliest and latest start and the producers' trace ids.
(
    SELECT (min(c_start), max(c_start), groupUniqArray(link_trace))
    FROM consumers
    WHERE (link_trace, link_span) IN (
        SELECT TraceId, SpanId
        FROM {{db}}.otel_traces
        WHERE TraceId IN (SELECT link_trace FROM consumers)
          AND ((Timestamp >= fromUnixTimestamp64Nano({head_start:Int64} - {link_lookback:Int64})
                AND Timestamp < fromUnixTimestamp64Nano({head_end:Int64} + {link_lookback:Int64}))
               OR (Timestamp >= fromUnixTimestamp64Nano({tail_start:Int64} - {link_lookback:Int64})
                   AND Timestamp < fromUnixTimestamp64Nano({tail_end:Int64} + {link_lookback:Int64})))
          AND SpanKind IN ('Producer', 'SPAN_KIND_PRODUCER')
          AND SpanAttributes['chain.ids'] = ''
    )
) AS members
SELECT
    c_start AS start_ns,
    p_service AS source,
    c_service AS target,
    toUInt8(c_failed OR p_failed) AS failed,
    toUInt64(greatest(c_start - p_end, 0)) AS wait_ns,
    p_duration,
    c_duration,
    arrayDistinct(arrayConcat(c_chains, if(notEmpty(p_chains), p_chains, m_chains))) AS chains,
    p_weight AS weight,
    p_environment AS environment
FROM consumers AS c
INNER JOIN (
    SELECT
        TraceId AS p_trace_id,
        SpanId AS p_span_id,
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
) AS p ON p.p_trace_id = c.link_trace AND p.p_span_id = c.link_span
LEFT JOIN (
    SELECT p_trace AS m_trace, p_span AS m_span, p_chains AS m_chains FROM ({{member_chains}})
) AS m ON m.m_trace = p.p_trace_id AND m.m_span = p.p_span_id
WHERE p_start >= c_start - {link_lookback:Int64} AND p_start < c_start + {link_lookback:Int64}
