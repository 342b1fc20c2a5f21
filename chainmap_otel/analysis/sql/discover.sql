-- Trace shapes: traces grouped by entry (root service, kind, route or name) and edge set,
-- split into traces covered by a chain and traces in none. Root-span durations are kept as
-- LatencyBuckets-style histograms (quarter powers of two from 1 µs) so time slices merge.
-- Bound: trace_edges.sql's parameters.
SELECT
    root_service,
    root_kind,
    entry,
    edge_key,
    empty(trace_chains) AS uncovered,
    count() AS traces,
    countIf(root_failed) AS errors,
    sumMap([toUInt16(greatest(0, floor(log2(greatest(root_duration, 1000) / 1000) * 4)))],
           [toUInt64(1)]) AS buckets,
    groupArray(3)(TraceId) AS examples
FROM (
    SELECT
        TraceId,
        trace_chains,
        root_service,
        root_kind,
        if(root_route != '', root_route, root_name) AS entry,
        root_duration,
        root_failed,
        arraySort(arrayDistinct(arrayMap(e -> concat(e.1, ' -> ', e.2),
                                          arrayFilter(e -> e.8 = 0, edges)))) AS edge_key
    FROM ({{trace_edges}})
    WHERE root_service != ''
)
GROUP BY root_service, root_kind, entry, edge_key, uncovered
