-- Trace search over chainmap_trace_summary, newest or slowest first, in two steps.
-- `found` merges the summary rows per trace (a trace has several rows until its parts merge)
-- with only the columns the filters and the order need, and keeps the best {limit:UInt32};
-- the outer query then merges every column of just those traces. A trace is in the window
-- when its first span starts in it; its rows are read from an hour before the window to an
-- hour after it ({slack_ns:Int64}), so traces lasting up to an hour are merged whole at the
-- window's edges. Fragments: found_columns adds what trace_filter tests (InChain: a row
-- tagged with the chain or a root row matching its rules; InService); candidate_filter narrows by spans of otel_traces (operation and attribute
-- lookups); classify gives untagged traces the chains whose entry rules match their root
-- span's service/kind/name/route/method (compiled by analysis.membership, patterns bound).
-- Bound: {start_ns:Int64}, {end_ns:Int64}, {slack_ns:Int64}, {limit:UInt32} and the
-- filters' own parameters.
WITH found AS (
    SELECT
        TraceId,
        min(Start) AS TraceStart,
        toUInt64(greatest(0,
            toUnixTimestamp64Nano(max(End)) - toUnixTimestamp64Nano(min(Start)))) AS DurationNs,
        sum(ErrorCount) AS ErrorCount
        {{found_columns}}
    FROM {{db}}.chainmap_trace_summary
    WHERE Start >= fromUnixTimestamp64Nano({start_ns:Int64} - {slack_ns:Int64})
      AND Start < fromUnixTimestamp64Nano({end_ns:Int64} + {slack_ns:Int64})
      AND {{candidate_filter}}
    GROUP BY TraceId
    HAVING TraceStart >= fromUnixTimestamp64Nano({start_ns:Int64})
       AND TraceStart < fromUnixTimestamp64Nano({end_ns:Int64})
       AND {{trace_filter}}
    ORDER BY {{order}} DESC, TraceId
    LIMIT {limit:UInt32}
)
SELECT
    TraceId,
    toUnixTimestamp64Nano(TraceStart) AS start_ns,
    DurationNs,
    RootService,
    RootName,
    arrayDistinct(arrayConcat(TaggedChains,
        if(RootService != '', {{classify}}, CAST([], 'Array(String)')))) AS chain_ids,
    Services,
    SpanCount,
    ErrorCount
FROM (
    SELECT
        TraceId,
        min(Start) AS TraceStart,
        toUInt64(greatest(0,
            toUnixTimestamp64Nano(max(End)) - toUnixTimestamp64Nano(min(Start)))) AS DurationNs,
        max(RootService) AS RootService,
        max(RootName) AS RootName,
        max(RootRoute) AS RootRoute,
        max(RootMethod) AS RootMethod,
        max(RootKind) AS RootKind,
        arraySort(groupUniqArrayArray(ChainIds)) AS TaggedChains,
        arraySort(groupUniqArrayArray(Services)) AS Services,
        sum(SpanCount) AS SpanCount,
        sum(ErrorCount) AS ErrorCount
    FROM {{db}}.chainmap_trace_summary
    WHERE TraceId IN (SELECT TraceId FROM found)
      AND Start >= fromUnixTimestamp64Nano({start_ns:Int64} - {slack_ns:Int64})
      AND Start < fromUnixTimestamp64Nano({end_ns:Int64} + {slack_ns:Int64})
    GROUP BY TraceId
)
ORDER BY {{order}} DESC, TraceId
