-- The traces of chain {chain:String} starting in [{from_ns:Int64}, {end_ns:Int64}) (the part of
-- a window past the critical-path rollup's watermark), from their spans (read {reach_ns:Int64}
-- earlier, to leave out traces that started before it), each with the latency of the chain's
-- part: critical_path_rank.sql's live part. {{member}} is the chain's membership test over
-- Chains and UntaggedFields, as for the rolled-up rows (a linked root's tags own no part).
-- {environment:String} ('' for all) keeps the traces whose root span is in it.
SELECT TraceId, if(has(EntryChains, {chain:String}), entry_ns, extent_ns) AS LatencyNs,
       0 AS Rolled
FROM (
    SELECT
        TraceId,
        -- A linked root's tags came through its link (critical_path_traces.sql).
        if(max(linked_root) = 1, [], groupUniqArrayArray(chains)) AS Chains,
        groupUniqArrayArray(entries) AS EntryChains,
        groupUniqArrayIf(fields, tagged = 0) AS UntaggedFields,
        toUInt64(max(start_ns + Duration) - min(start_ns)) AS extent_ns,
        argMinIf(Duration, (start_ns, SpanId), has(entries, {chain:String})) AS entry_ns,
        max(root_environment) AS Environment
    FROM (
{{spans}}
    )
    GROUP BY TraceId
    HAVING min(start_ns) >= {from_ns:Int64} AND min(start_ns) < {end_ns:Int64}
)
WHERE (has(EntryChains, {chain:String}) OR ({{member}}))
  AND ({environment:String} = '' OR Environment = {environment_value:String})

