-- The traces of chain {chain:String} starting in the window [{start_ns:Int64}, {end_ns:Int64}),
-- each with the latency of the chain's part (its marked entry span's duration, else the
-- trace's extent), counted and ranked for the per-chain critical path: how many, the slow
-- threshold (the {{slow_q}} quantile, a constant of analysis.critical_path), a deterministic
-- sample of {cap:UInt32} (least cityHash64(TraceId)) and the {cap:UInt32} slowest, each
-- marked rolled up or live.
-- Traces starting below {rolled_to_ns:Int64} are read from chainmap_critical_path (the
-- chain's own part when a span marks its entry there, else the whole trace), the others
-- live from the spans ({{live}}: sql/critical_path_live.sql, or no rows when no span lies
-- past the rolled-up end). {{member}} is the chain's membership test
-- over Chains and UntaggedFields (analysis.critical_path); both parts apply it to the same
-- columns. {environment:String} ('' for all) keeps the traces whose root span is in it,
-- so one environment's aggregate never mixes in another's traces.
WITH rolled AS (
    SELECT TraceId, LatencyNs, 1 AS Rolled
    FROM {{rolled}}
    WHERE EntryChain = {chain:String}
      AND ({environment:String} = '' OR Environment = {environment_value:String})
      AND Start >= fromUnixTimestamp64Nano({start_ns:Int64})
      AND Start < fromUnixTimestamp64Nano({rolled_to_ns:Int64})
    UNION ALL
    SELECT TraceId, LatencyNs, 1 AS Rolled
    FROM {{rolled}}
    WHERE EntryChain = '' AND NOT has(EntryChains, {chain:String}) AND ({{member}})
      AND ({environment:String} = '' OR Environment = {environment_value:String})
      AND Start >= fromUnixTimestamp64Nano({start_ns:Int64})
      AND Start < fromUnixTimestamp64Nano({rolled_to_ns:Int64})
), live AS (
{{live}}
)
-- The live part is read once (a CTE is run again where it is named): one row of its count,
-- quantile state and its own sample and slowest, merged here with the rolled-up part's
-- (read three times, each cheap: a range of the table's sorting key, ORDER BY ... LIMIT).
SELECT
    live_n + (SELECT count() FROM rolled),
    arrayReduce('quantileExactMerge({{slow_q}})',
        [live_q, (SELECT quantileExactState({{slow_q}})(LatencyNs) FROM rolled)]),
    arrayMap(x -> (x.2, x.3), arraySlice(arraySort(arrayConcat(live_sample, (
        SELECT groupArray((cityHash64(TraceId), TraceId, toUInt8(1))) FROM (
            SELECT TraceId FROM rolled ORDER BY cityHash64(TraceId), TraceId
            LIMIT {cap:UInt32})))), 1, {cap:UInt32})),
    arrayMap(x -> (x.2, x.3), arraySlice(arraySort(arrayConcat(live_slowest, (
        SELECT groupArray((-toInt64(LatencyNs), TraceId, toUInt8(1))) FROM (
            SELECT TraceId, LatencyNs FROM rolled ORDER BY LatencyNs DESC, TraceId
            LIMIT {cap:UInt32})))), 1, {cap:UInt32}))
FROM (
    SELECT
        count() AS live_n,
        quantileExactState({{slow_q}})(LatencyNs) AS live_q,
        groupArraySorted({cap:UInt32})((cityHash64(TraceId), TraceId, toUInt8(0)))
            AS live_sample,
        groupArraySorted({cap:UInt32})((-toInt64(LatencyNs), TraceId, toUInt8(0)))
            AS live_slowest
    FROM live
)
