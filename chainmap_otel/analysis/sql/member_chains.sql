-- The chains of spans by the membership rule inside their own trace (analysis.membership),
-- one definition for linked_chains.sql and link_edges.sql: per span of the traces in
-- `members.3` (a scalar (min start, max start, trace ids) the query holding this one
-- defines, starts in ns) starting at most {link_lookback:Int64} ns after `members.2`, its
-- chain.ids plus the own chains of its ancestors when tagged, else the chains its entry
-- rules match ({{classify}}) plus its ancestors' own chains (a tagged ancestor's stack, an
-- untagged one's rule matches), propagated down by {{chains_down}}. The traces are read by
-- TraceId (the bloom filter index) from 300 s before the earliest span asked for can start
-- (`members.1` - {link_lookback:Int64}) to the latest, so ancestors starting up to 300 s
-- before it are always seen. Spans with no chain are left out.
-- Columns: p_trace, p_span, p_start, p_chains.
SELECT TraceId AS p_trace, span.1 AS p_span, span.2 AS p_start, span_chains AS p_chains
FROM (
    SELECT
        TraceId,
        groupArray((SpanId, start)) AS spans,
        groupArray(SpanId) AS ids,
        groupArray(ParentSpanId) AS parent_ids,
        groupArray(own_chains) AS own,
        {{chains_down}} AS chain_sets
    FROM (
        SELECT
            TraceId,
            SpanId,
            ParentSpanId,
            toInt64(toUnixTimestamp64Nano(Timestamp)) AS start,
            if(SpanAttributes['chain.ids'] != '',
               arrayFilter(x -> x != '', splitByChar(',', SpanAttributes['chain.ids'])),
               {{classify}}) AS own_chains
        FROM {{db}}.otel_traces
        WHERE Timestamp >= fromUnixTimestamp64Nano(
                  members.1 - {link_lookback:Int64} - 300000000000)
          AND Timestamp < fromUnixTimestamp64Nano(members.2 + {link_lookback:Int64})
          AND TraceId IN (SELECT arrayJoin(members.3))
    )
    GROUP BY TraceId
)
ARRAY JOIN spans AS span, chain_sets AS span_chains
WHERE notEmpty(span_chains)
