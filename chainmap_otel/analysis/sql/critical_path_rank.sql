-- The traces of chain {chain:String} starting in the window [{start_ns:Int64}, {end_ns:Int64}),
-- each with the latency of the chain's part (its marked entry span's duration, else the
-- trace's extent), counted and ranked for the per-chain critical path: how many, the slow
-- threshold ({slow_q:Float64} quantile), a deterministic sample of {cap:UInt32} (least
-- cityHash64(TraceId)) and the {cap:UInt32} slowest, each marked rolled up or live.
-- Traces starting below {rolled_to_ns:Int64} are read from chainmap_critical_path (the
-- chain's own part when a span marks its entry there, else the whole trace), the others
-- live from the spans ({from_ns:Int64} = the rolled-up end, read {reach_ns:Int64} earlier
-- to leave out traces that started before it). {{member}} is the chain's membership test
-- over Chains and UntaggedFields (analysis.critical_path); both parts apply it to the same
-- columns.
WITH rolled AS (
    SELECT TraceId, LatencyNs, 1 AS Rolled
    FROM {{rolled}}
    WHERE EntryChain = {chain:String}
      AND Start >= fromUnixTimestamp64Nano({start_ns:Int64})
      AND Start < fromUnixTimestamp64Nano({rolled_to_ns:Int64})
    UNION ALL
    SELECT TraceId, LatencyNs, 1 AS Rolled
    FROM {{rolled}}
    WHERE EntryChain = '' AND NOT has(EntryChains, {chain:String}) AND ({{member}})
      AND Start >= fromUnixTimestamp64Nano({start_ns:Int64})
      AND Start < fromUnixTimestamp64Nano({rolled_to_ns:Int64})
), live AS (
    SELECT TraceId, if(has(EntryChains, {chain:String}), entry_ns, extent_ns) AS LatencyNs,
           0 AS Rolled
    FROM (
        SELECT
            TraceId,
            groupUniqArrayArray(chains) AS Chains,
            groupUniqArrayArray(entries) AS EntryChains,
            groupUniqArrayIf(fields, tagged = 0) AS UntaggedFields,
            toUInt64(max(start_ns + Duration) - min(start_ns)) AS extent_ns,
            argMinIf(Duration, (start_ns, SpanId), has(entries, {chain:String})) AS entry_ns
        FROM (
{{spans}}
        )
        GROUP BY TraceId
        HAVING min(start_ns) >= {from_ns:Int64} AND min(start_ns) < {end_ns:Int64}
    )
    WHERE has(EntryChains, {chain:String}) OR ({{member}})
)
SELECT
    (SELECT (sum(n), quantileExactMerge({slow_q:Float64})(s)) FROM (
        SELECT count() AS n, quantileExactState({slow_q:Float64})(LatencyNs) AS s FROM rolled
        UNION ALL
        SELECT count() AS n, quantileExactState({slow_q:Float64})(LatencyNs) AS s FROM live)),
    (SELECT groupArray((TraceId, Rolled)) FROM (
        SELECT * FROM (
            (SELECT * FROM rolled ORDER BY cityHash64(TraceId), TraceId LIMIT {cap:UInt32})
            UNION ALL
            (SELECT * FROM live ORDER BY cityHash64(TraceId), TraceId LIMIT {cap:UInt32}))
        ORDER BY cityHash64(TraceId), TraceId LIMIT {cap:UInt32})),
    (SELECT groupArray((TraceId, Rolled)) FROM (
        SELECT * FROM (
            (SELECT * FROM rolled ORDER BY LatencyNs DESC, TraceId LIMIT {cap:UInt32})
            UNION ALL
            (SELECT * FROM live ORDER BY LatencyNs DESC, TraceId LIMIT {cap:UInt32}))
        ORDER BY LatencyNs DESC, TraceId LIMIT {cap:UInt32}))
