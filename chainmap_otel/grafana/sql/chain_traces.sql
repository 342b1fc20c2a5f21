-- Traces of one chain from chainmap_trace_summary (one row per trace once merged), as trace
-- search finds them: tagged with the chain, or with a root span ({{classify}} over the root
-- columns) or an untagged non-root span ({{classify_untagged}} over untagged_fields) the
-- chain's entry rules match. {{filter}}: an extra condition; {{order}}: the ranking.
SELECT trace_id, start, duration_ms, root_service, root_operation, root_status, spans, errors
FROM (
    SELECT
        TraceId AS trace_id,
        min(Start) AS start,
        round((toUnixTimestamp64Nano(max(End)) - toUnixTimestamp64Nano(start)) / 1e6, 3)
            AS duration_ms,
        max(RootService) AS root_service,
        max(RootName) AS root_operation,
        max(RootRoute) AS root_route,
        max(RootPath) AS root_path,
        max(RootMethod) AS root_method,
        max(RootKind) AS root_kind,
        max(RootStatus) AS root_status,
        sum(SpanCount) AS spans,
        sum(ErrorCount) AS errors,
        groupUniqArrayArray(ChainIds) AS chain_ids,
        groupUniqArrayArray(UntaggedFields) AS untagged_fields
    FROM {{db}}.chainmap_trace_summary
    WHERE Start >= $__fromTime - INTERVAL 1 HOUR AND Start <= $__toTime
    GROUP BY TraceId
)
WHERE $__timeFilter(start)
  AND (has(chain_ids, ${chain:sqlstring})
       OR (root_service != '' AND has({{classify}}, ${chain:sqlstring}))
       OR has({{classify_untagged}}, ${chain:sqlstring}))
  AND {{filter}}
ORDER BY {{order}}
LIMIT 50
