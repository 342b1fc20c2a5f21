-- Trace search over chainmap_trace_summary, for the part of a window the merged-trace rollup
-- does not cover yet, in two steps. `found` merges the summary rows per trace with only the
-- columns the filters and the order need, and keeps the best {limit:UInt32}; trace_merge.sql
-- then merges every column of just those traces. A trace is in the window when its first
-- span starts in it; rows are read {slack_ns:Int64} either side of the window.
-- Fragments: found_columns adds what trace_filter tests, each a per-row test folded per trace
-- with max() (ChainTagged, ChainLinked, ChainEntered, ChainRules: a row tagged with the
-- chain, whose linked root span carries it, with a span entering it, whose root or untagged
-- spans match its rules; InService); candidate_filter narrows by spans of otel_traces (operation and attribute
-- lookups); entry_join joins trace_chain_entries.sql when a chain's own entry span ranks
-- or filters (found_columns then folds its ChainNs and ChainFailed). A window's environment
-- ({environment:String}, '' for all) keeps the traces whose root span is in it. Bound:
-- {environment:String}, {start_ns:Int64}, {end_ns:Int64}, {slack_ns:Int64}, {limit:UInt32} and the
-- filters' own parameters.
WITH found AS (
    SELECT
        TraceId,
        min(Start) AS TraceStart,
        toUInt64(greatest(0,
            toUnixTimestamp64Nano(max(End)) - toUnixTimestamp64Nano(min(Start)))) AS DurationNs,
        sum(ErrorCount) AS ErrorCount,
        max(RootEnvironment) AS TraceEnvironment
        {{found_columns}}
    FROM {{db}}.chainmap_trace_summary
    {{entry_join}}
    WHERE Start >= fromUnixTimestamp64Nano({start_ns:Int64} - {slack_ns:Int64})
      AND Start < fromUnixTimestamp64Nano({end_ns:Int64} + {slack_ns:Int64})
      AND {{candidate_filter}}
    GROUP BY TraceId
    HAVING TraceStart >= fromUnixTimestamp64Nano({start_ns:Int64})
       AND TraceStart < fromUnixTimestamp64Nano({end_ns:Int64})
       AND ({environment:String} = '' OR TraceEnvironment = {environment_value:String})
       AND {{trace_filter}}
    ORDER BY {{order}} DESC, TraceId DESC
    LIMIT {limit:UInt32}
)
{{trace_merge}}
