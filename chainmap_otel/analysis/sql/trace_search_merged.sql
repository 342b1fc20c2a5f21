-- Trace search over chainmap_trace_merged (one row per trace of a closed slice, written by
-- the merged-trace rollup), for the part of a window below the rollup's watermark: no merge,
-- and the table's sorting key is (DurationNs, TraceId), so the slowest traces of a week are
-- read from the end of each part until {limit:UInt32} pass the filters (hence ties broken by
-- trace id descending, here and in the live part). Newest first reads the window's rows. The
-- filters are the live search's per-row tests applied to the trace's one row (found_columns
-- defines ChainTagged, ChainLinked, ChainEntered, ChainRules and InService without max(), and
-- ChainNs/ChainFailed from entry_join).
-- A window's environment ({environment:String}, '' for all) keeps the traces whose root span
-- is in it.
-- Bound: {start_ns:Int64}, {end_ns:Int64}, {environment:String}, {limit:UInt32} and the
-- filters' own parameters.
SELECT
    TraceId,
    Start AS TraceStart,
    DurationNs,
    RootService,
    RootName,
    RootRoute,
    RootPath,
    RootMethod,
    RootKind,
    ChainIds AS TaggedChains,
    Services,
    SpanCount,
    ErrorCount,
    UntaggedFields,
    RootEnvironment
    {{found_columns}}
FROM {{db}}.chainmap_trace_merged
{{entry_join}}
WHERE Start >= fromUnixTimestamp64Nano({start_ns:Int64})
  AND Start < fromUnixTimestamp64Nano({end_ns:Int64})
  AND ({environment:String} = '' OR RootEnvironment = {environment_value:String})
  AND {{candidate_filter}}
  AND {{trace_filter}}
ORDER BY {{order}} DESC, TraceId DESC
LIMIT {limit:UInt32}
