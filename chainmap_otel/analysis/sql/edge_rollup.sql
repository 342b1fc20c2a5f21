-- One slice of the edge rollup: trace_edges.sql over the traces that START in the slice
-- (spans read with a margin either side), grouped per minute of trace start, chain set,
-- edge (the chains the edge counts for) and environment (of the span that starts the edge),
-- plus link_edges.sql's links whose consumer starts in the slice, per minute of the
-- consumer's start, inserted into chainmap_edge_minute under the classification's fingerprint.
-- Calls/Errors count stored calls, EstimatedCalls/EstimatedErrors sum their sampling
-- weights (trace_edges' 11th element, link_edges' weight).
-- ClientBuckets/ServerBuckets count the connector's client/server latencies (trace_edges'
-- 10th/9th elements) per histogram bucket, keyed by the bucket's upper bound in ns (the first
-- bound >= the latency; the last bound is max UInt64, +Inf); ClientSum/ServerSum sum them.
-- Bound: {catalog:UInt64}, {latency_bounds_ns:Array(UInt64)} plus trace_edges' and
-- link_edges' parameters (see analysis.rollups.edges).
INSERT INTO {{db}}.chainmap_edge_minute
    (Catalog, Minute, Source, Target, ConnectionType, TargetType, ChainIds, Environment,
     Calls, Errors, EstimatedCalls, EstimatedErrors, Latency, FirstSeen, LastSeen,
     ClientBuckets, ClientSum, ServerBuckets, ServerSum)
SELECT * FROM (
SELECT
    {catalog:UInt64},
    toStartOfMinute(toDateTime(intDiv(start_ns, 1000000000))) AS minute,
    edge.1 AS source,
    edge.2 AS target,
    edge.3 AS connection_type,
    edge.6 AS target_type,
    arraySort(edge.7) AS chains,
    edge.12 AS environment,
    count(),
    countIf(edge.4),
    sum(edge.11),
    sumIf(edge.11, edge.4),
    quantilesTDigestState(0.5, 0.95, 0.99)(edge.5),
    min(start_ns),
    max(start_ns),
    sumMap(map(arrayFirst(b -> b >= edge.10, {latency_bounds_ns:Array(UInt64)}), toUInt64(1))),
    sum(edge.10),
    sumMap(map(arrayFirst(b -> b >= edge.9, {latency_bounds_ns:Array(UInt64)}), toUInt64(1))),
    sum(edge.9)
FROM (
{{trace_edges}}
)
ARRAY JOIN edges AS edge
GROUP BY minute, source, target, connection_type, target_type, chains, environment
UNION ALL
SELECT
    {catalog:UInt64},
    toStartOfMinute(toDateTime(intDiv(start_ns, 1000000000))) AS minute,
    source,
    target,
    'messaging_system' AS connection_type,
    'service' AS target_type,
    arraySort(chains) AS sorted_chains,
    environment,
    count(),
    countIf(failed),
    sum(weight),
    sumIf(weight, failed = 1),
    quantilesTDigestState(0.5, 0.95, 0.99)(wait_ns),
    min(start_ns),
    max(start_ns),
    sumMap(map(arrayFirst(b -> b >= p_duration, {latency_bounds_ns:Array(UInt64)}), toUInt64(1))),
    sum(p_duration),
    sumMap(map(arrayFirst(b -> b >= c_duration, {latency_bounds_ns:Array(UInt64)}), toUInt64(1))),
    sum(c_duration)
FROM (
{{link_edges}}
)
GROUP BY minute, source, target, connection_type, target_type, sorted_chains, environment
)
SETTINGS insert_distributed_sync = 1
