-- Service-graph edges per chain: trace_edges.sql aggregated per (chain, edge).
-- Bound: {wanted:Array(String)} chain ids ('' = all traffic) plus trace_edges' parameters.
SELECT
    chain,
    edge.1 AS source,
    edge.2 AS target,
    edge.3 AS connection_type,
    edge.6 AS target_type,
    count() AS calls,
    countIf(edge.4) AS errors,
    quantilesExact(0.5, 0.95, 0.99)(edge.5) AS latency_ns,
    min(start_ns) AS first_seen_ns,
    max(start_ns) AS last_seen_ns
FROM (
{{trace_edges}}
)
ARRAY JOIN edges AS edge
ARRAY JOIN arrayFilter(c -> has({wanted:Array(String)}, c), arrayPushFront(trace_chains, '')) AS chain
GROUP BY chain, source, target, connection_type, target_type
ORDER BY chain, source, target, connection_type
