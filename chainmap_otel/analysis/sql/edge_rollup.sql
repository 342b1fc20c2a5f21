-- One slice of the edge rollup: trace_edges.sql over the traces that START in the slice
-- (spans read with a margin either side), grouped per minute of trace start, chain set and
-- edge (the chains the edge counts for), inserted into chainmap_edge_minute under the classification's fingerprint.
-- ClientBuckets/ServerBuckets count the connector's client/server latencies (trace_edges'
-- 10th/9th elements) per histogram bucket, keyed by the bucket's upper bound in ns (the first
-- bound >= the latency; the last bound is max UInt64, +Inf); ClientSum/ServerSum sum them.
-- Bound: {catalog:UInt64}, {latency_bounds_ns:Array(UInt64)} plus trace_edges' parameters
-- (see analysis.rollups.edges).
INSERT INTO {{db}}.chainmap_edge_minute
    (Catalog, Minute, Source, Target, ConnectionType, TargetType, ChainIds,
     Calls, Errors, Latency, FirstSeen, LastSeen,
     ClientBuckets, ClientSum, ServerBuckets, ServerSum)
SELECT
    {catalog:UInt64},
    toStartOfMinute(toDateTime(intDiv(start_ns, 1000000000))) AS minute,
    edge.1 AS source,
    edge.2 AS target,
    edge.3 AS connection_type,
    edge.6 AS target_type,
    arraySort(edge.7) AS chains,
    count(),
    countIf(edge.4),
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
GROUP BY minute, source, target, connection_type, target_type, chains
SETTINGS insert_distributed_sync = 1
