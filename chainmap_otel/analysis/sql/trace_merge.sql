-- The summary rows of each trace merged into one (a trace has several rows until its parts
-- merge): extent, root span (and its environment), tagged chains, services, span and error
-- counts, the rule fields of its untagged non-root spans, the chains of its root span when
-- that span has span links and the chains its spans enter. Rows are read
-- from {slack_ns:Int64} before {start_ns:Int64} to {slack_ns:Int64} after {end_ns:Int64}, so
-- traces lasting up to that long are merged whole at the window's edges. Shared by trace
-- search (the live part, rows = the traces it found) and the merged-trace rollup (every
-- trace starting in a closed slice, having = the slice).
SELECT
    TraceId,
    min(Start) AS TraceStart,
    toUInt64(greatest(0,
        toUnixTimestamp64Nano(max(End)) - toUnixTimestamp64Nano(min(Start)))) AS DurationNs,
    max(RootService) AS RootService,
    max(RootName) AS RootName,
    max(RootRoute) AS RootRoute,
    max(RootPath) AS RootPath,
    max(RootMethod) AS RootMethod,
    max(RootKind) AS RootKind,
    arraySort(groupUniqArrayArray(ChainIds)) AS TaggedChains,
    arraySort(groupUniqArrayArray(Services)) AS Services,
    sum(SpanCount) AS SpanCount,
    sum(ErrorCount) AS ErrorCount,
    arraySort(groupUniqArrayArray(UntaggedFields)) AS UntaggedFields,
    max(RootEnvironment) AS RootEnvironment,
    arraySort(groupUniqArrayArray(LinkedRootChains)) AS LinkedRootChains,
    arraySort(groupUniqArrayArray(EntryChainIds)) AS EntryChainIds
FROM {{db}}.chainmap_trace_summary
WHERE Start >= fromUnixTimestamp64Nano({start_ns:Int64} - {slack_ns:Int64})
  AND Start < fromUnixTimestamp64Nano({end_ns:Int64} + {slack_ns:Int64})
  AND {{rows}}
GROUP BY TraceId
HAVING {{having}}
