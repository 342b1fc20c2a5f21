-- Trace search, newest or slowest first: the found traces (traces: trace_search_live.sql
-- or trace_search_merged.sql, one row per trace with trace_merge.sql's columns) as the API
-- lists them. classify gives a trace the chains whose entry rules match its root span's
-- service/kind/name/route/path/method, classify_untagged those matching one of its untagged
-- non-root spans (compiled by analysis.membership, patterns bound).
SELECT
    TraceId,
    toUnixTimestamp64Nano(TraceStart) AS start_ns,
    DurationNs,
    RootService,
    RootName,
    arrayDistinct(arrayConcat(TaggedChains,
        if(RootService != '', {{classify}}, CAST([], 'Array(String)')),
        {{classify_untagged}})) AS chain_ids,
    Services,
    SpanCount,
    ErrorCount
FROM (
{{traces}}
)
ORDER BY {{order}} DESC, TraceId DESC
