-- Service-graph edges per chain (an edge counts for the chains of its tuple or row, see
-- trace_edges.sql; 'caller:' edges only for their chains, never for all traffic): the edge rollup for the part of the window it covers, plus
-- trace_edges.sql, paired live, for the rest (the minutes after the rollup's watermark and the
-- part-minute at the window's start). The rollup part reads chainmap_edge_hour for the whole
-- hours and chainmap_edge_minute for the part-hours at either edge (two minute ranges), as one
-- UNION ALL of rows with the same columns. Every part counts the edges of the traces that
-- START in it, so together they count each trace once. Latency is a t-digest throughout: the
-- rollup's states are merged once per chain set and edge, then fanned out to the wanted chains
-- and merged with the live part's states. The latency histograms (the servicegraph
-- connector's client and server latencies, see trace_edges.sql) are bucket counts keyed by
-- the bucket's upper bound in ns, summed per key with sumMap throughout (the rollup's rows
-- and the live part's, bucketed here as edge_rollup.sql does), and their sums in ns.
-- edge_hour / edge_minute are the rollup tables, or an empty stand-in where one is not read.
-- link_edges is link_edges.sql, which pairs consumers with their producers across traces
-- through span links: the rollup holds the links per minute of the consumer's start, the
-- live part pairs those whose consumer starts in the live ranges (head and tail).
-- calls/errors count stored calls; estimated_calls/estimated_errors sum the calls' sampling
-- weights (adjusted counts; equal to calls/errors for unsampled data). Every part keeps the
-- edges of {environment:String} only ('' = all): an edge's environment is that of the span
-- starting it (the client or producer; the root server for `user`).
-- Bound: {wanted:Array(String)} chain ids ('' = all traffic), {catalog:UInt64},
-- {hour_start:Int64} / {hour_end:Int64} and {minute_head_start:Int64} / {minute_head_end:Int64}
-- / {minute_tail_start:Int64} / {minute_tail_end:Int64} (Unix seconds, whole hours and
-- minutes; equal when a range is empty), {latency_bounds_ns:Array(UInt64)} plus
-- trace_edges' and link_edges' parameters.
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
    max(part_last) AS last_seen_ns,
    sumMap(part_client_buckets) AS client_buckets,
    sum(part_client_sum) AS client_sum_ns,
    sumMap(part_server_buckets) AS server_buckets,
    sum(part_server_sum) AS server_sum_ns,
    sum(part_estimated_calls) AS estimated_calls,
    sum(part_estimated_errors) AS estimated_errors
FROM (
    SELECT
        chain,
        source,
        target,
        connection_type,
        target_type,
        set_calls AS part_calls,
        set_errors AS part_errors,
        set_latency AS part_latency,
        set_first AS part_first,
        set_last AS part_last,
        set_client_buckets AS part_client_buckets,
        set_client_sum AS part_client_sum,
        set_server_buckets AS part_server_buckets,
        set_server_sum AS part_server_sum,
        set_estimated_calls AS part_estimated_calls,
        set_estimated_errors AS part_estimated_errors
    FROM (
        SELECT
            CAST(ChainIds, 'Array(String)') AS chains,
            toString(Source) AS source,
            toString(Target) AS target,
            toString(ConnectionType) AS connection_type,
            toString(TargetType) AS target_type,
            sum(Calls) AS set_calls,
            sum(Errors) AS set_errors,
            quantilesTDigestMergeState(0.5, 0.95, 0.99)(Latency) AS set_latency,
            min(FirstSeen) AS set_first,
            max(LastSeen) AS set_last,
            sumMap(ClientBuckets) AS set_client_buckets,
            sum(toUInt128(ClientSum)) AS set_client_sum,
            sumMap(ServerBuckets) AS set_server_buckets,
            sum(toUInt128(ServerSum)) AS set_server_sum,
            sum(EstimatedCalls) AS set_estimated_calls,
            sum(EstimatedErrors) AS set_estimated_errors
        FROM (
            SELECT ChainIds, Source, Target, ConnectionType, TargetType,
                   Calls, Errors, Latency, FirstSeen, LastSeen,
                   ClientBuckets, ClientSum, ServerBuckets, ServerSum,
                   EstimatedCalls, EstimatedErrors
            FROM {{edge_hour}}
            WHERE Catalog = {catalog:UInt64}
              AND Hour >= toDateTime({hour_start:Int64})
              AND Hour < toDateTime({hour_end:Int64})
              AND {{row_environment}}
            UNION ALL
            SELECT ChainIds, Source, Target, ConnectionType, TargetType,
                   Calls, Errors, Latency, FirstSeen, LastSeen,
                   ClientBuckets, ClientSum, ServerBuckets, ServerSum,
                   EstimatedCalls, EstimatedErrors
            FROM {{edge_minute}}
            WHERE Catalog = {catalog:UInt64}
              AND ((Minute >= toDateTime({minute_head_start:Int64})
                    AND Minute < toDateTime({minute_head_end:Int64}))
                   OR (Minute >= toDateTime({minute_tail_start:Int64})
                       AND Minute < toDateTime({minute_tail_end:Int64})))
              AND {{row_environment}}
        )
        GROUP BY chains, source, target, connection_type, target_type
    )
    ARRAY JOIN arrayFilter(c -> has({wanted:Array(String)}, c),
                           if(startsWith(source, 'caller:'), chains, arrayPushFront(chains, '')))
               AS chain
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
        max(start_ns) AS part_last,
        sumMap(map(arrayFirst(b -> b >= edge.10, {latency_bounds_ns:Array(UInt64)}),
                   toUInt64(1))) AS part_client_buckets,
        sum(toUInt128(edge.10)) AS part_client_sum,
        sumMap(map(arrayFirst(b -> b >= edge.9, {latency_bounds_ns:Array(UInt64)}),
                   toUInt64(1))) AS part_server_buckets,
        sum(toUInt128(edge.9)) AS part_server_sum,
        sum(edge.11) AS part_estimated_calls,
        sumIf(edge.11, edge.4) AS part_estimated_errors
    FROM (
{{trace_edges}}
    )
    ARRAY JOIN edges AS edge
    ARRAY JOIN arrayFilter(c -> has({wanted:Array(String)}, c),
                           if(edge.8 = 1, edge.7, arrayPushFront(edge.7, ''))) AS chain
    WHERE {environment:String} = '' OR edge.12 = {environment_value:String}
    GROUP BY chain, source, target, connection_type, target_type
    UNION ALL
    SELECT
        chain,
        source,
        target,
        'messaging_system' AS connection_type,
        'service' AS target_type,
        count() AS part_calls,
        countIf(failed) AS part_errors,
        quantilesTDigestState(0.5, 0.95, 0.99)(wait_ns) AS part_latency,
        min(start_ns) AS part_first,
        max(start_ns) AS part_last,
        sumMap(map(arrayFirst(b -> b >= p_duration, {latency_bounds_ns:Array(UInt64)}),
                   toUInt64(1))) AS part_client_buckets,
        sum(toUInt128(p_duration)) AS part_client_sum,
        sumMap(map(arrayFirst(b -> b >= c_duration, {latency_bounds_ns:Array(UInt64)}),
                   toUInt64(1))) AS part_server_buckets,
        sum(toUInt128(c_duration)) AS part_server_sum,
        sum(weight) AS part_estimated_calls,
        sumIf(weight, failed = 1) AS part_estimated_errors
    FROM (
{{link_edges}}
    )
    ARRAY JOIN arrayFilter(x -> has({wanted:Array(String)}, x), arrayPushFront(chains, ''))
               AS chain
    WHERE {environment:String} = '' OR environment = {environment_value:String}
    GROUP BY chain, source, target, connection_type, target_type
)
GROUP BY chain, source, target, connection_type, target_type
ORDER BY chain, source, target, connection_type
