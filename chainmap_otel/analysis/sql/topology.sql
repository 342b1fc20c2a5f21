-- Service-graph edges per chain: the edge rollup (chainmap_edge_minute) for the whole minutes
-- it covers, plus trace_edges.sql, paired live, for the rest of the window (the minutes after
-- the rollup's watermark and the part-minute at the window's start). Both halves count the
-- edges of the traces that START in their part, so together they count each trace once.
-- Latency is a t-digest either way: the rollup's states and the live part's states are
-- merged together.
-- edge_rollup is the rollup table, or an empty stand-in on a store without one.
-- Bound: {wanted:Array(String)} chain ids ('' = all traffic), {catalog:UInt64} and
-- {rollup_start:Int64} / {rollup_end:Int64} (Unix seconds, whole minutes; equal when the
-- rollup is not used) plus trace_edges' parameters.
SELECT
    chain,
    source,
    target,
    connection_type,
    target_type,
    sum(part_calls) AS calls,
    sum(part_errors) AS errors,
    quantilesTDigestMerge(0.5, 0.95, 0.99)(part_latency) AS latency_ns,
    min(part_first) AS first_seen_ns,
    max(part_last) AS last_seen_ns
FROM (
    SELECT
        chain,
        toString(Source) AS source,
        toString(Target) AS target,
        toString(ConnectionType) AS connection_type,
        toString(TargetType) AS target_type,
        sum(Calls) AS part_calls,
        sum(Errors) AS part_errors,
        quantilesTDigestMergeState(0.5, 0.95, 0.99)(Latency) AS part_latency,
        min(FirstSeen) AS part_first,
        max(LastSeen) AS part_last
    FROM {{edge_rollup}}
    ARRAY JOIN arrayFilter(c -> has({wanted:Array(String)}, c),
                           arrayPushFront(CAST(ChainIds, 'Array(String)'), '')) AS chain
    WHERE Catalog = {catalog:UInt64}
      AND Minute >= toDateTime({rollup_start:Int64})
      AND Minute < toDateTime({rollup_end:Int64})
    GROUP BY chain, source, target, connection_type, target_type
    UNION ALL
    SELECT
        chain,
        edge.1 AS source,
        edge.2 AS target,
        edge.3 AS connection_type,
        edge.6 AS target_type,
        count() AS part_calls,
        countIf(edge.4) AS part_errors,
        quantilesTDigestState(0.5, 0.95, 0.99)(edge.5) AS part_latency,
        min(start_ns) AS part_first,
        max(start_ns) AS part_last
    FROM (
{{trace_edges}}
    )
    ARRAY JOIN edges AS edge
    ARRAY JOIN arrayFilter(c -> has({wanted:Array(String)}, c), arrayPushFront(trace_chains, '')) AS chain
    GROUP BY chain, source, target, connection_type, target_type
)
GROUP BY chain, source, target, connection_type, target_type
ORDER BY chain, source, target, connection_type
