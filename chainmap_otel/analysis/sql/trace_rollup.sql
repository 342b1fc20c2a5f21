-- One slice of the merged-trace rollup: trace_merge.sql over the traces whose first span
-- starts in [{start_ns:Int64}, {end_ns:Int64}), inserted into chainmap_trace_merged.
INSERT INTO {{db}}.chainmap_trace_merged
    (TraceId, Start, DurationNs, RootService, RootName, RootRoute, RootPath, RootMethod,
     RootKind,
     ChainIds, Services, SpanCount, ErrorCount, UntaggedFields, RootEnvironment,
     LinkedRootChains, EntryChainIds)
SELECT
    TraceId, TraceStart, DurationNs, RootService, RootName, RootRoute, RootPath, RootMethod,
    RootKind,
    TaggedChains, Services, SpanCount, ErrorCount, UntaggedFields, RootEnvironment,
    LinkedRootChains, EntryChainIds
FROM (
{{trace_merge}}
)
SETTINGS insert_distributed_sync = 1
