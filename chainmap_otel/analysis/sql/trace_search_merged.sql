-- Trace search over chainmap_trace_merged (one row per trace of a closed slice, written by
-- the merged-trace rollup), for the part of a window below the rollup's watermark: no merge,
-- so ordering a week's traces by duration reads two columns of their rows. The filters are
-- the live search's per-row tests applied to the trace's one row (found_columns defines
-- InChain/InService without max()); ties broken by trace id as in the live part.
-- Bound: {start_ns:Int64}, {end_ns:Int64}, {limit:UInt32} and the filters' own parameters.
SELECT
    TraceId,
    Start AS TraceStart,
    DurationNs,
    RootService,
    RootName,
    RootRoute,
    RootMethod,
    RootKind,
    ChainIds AS TaggedChains,
    Services,
    SpanCount,
    ErrorCount
    {{found_columns}}
FROM {{db}}.chainmap_trace_merged
WHERE Start >= fromUnixTimestamp64Nano({start_ns:Int64})
  AND Start < fromUnixTimestamp64Nano({end_ns:Int64})
  AND {{candidate_filter}}
  AND {{trace_filter}}
ORDER BY {{order}} DESC, TraceId
LIMIT {limit:UInt32}
