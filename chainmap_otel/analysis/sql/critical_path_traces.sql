-- The traces whose first span starts in [{from_ns:Int64}, {to_ns:Int64}), one row each with
-- its spans as parallel arrays (what analysis.path_sections walks) and what membership reads:
-- the tagged chains and the rule fields of the untagged spans, root included (ServiceName,
-- SpanName, Route, Path, Method, SpanKind spelled 'Server', ...), and the environment of its
-- root span (deployment.environment.name, else deployment.environment). Spans are read from
-- {reach_ns:Int64} before the range (they reveal traces that started earlier, which are left
-- out) up to {read_to_ns:Int64}; {{traces}} may narrow the traces read. The critical-path
-- rollup reads each slice so; the per-chain aggregate reads its sampled live traces so.
-- A trace whose root span links to another trace (a queue's consumer) continues the linked
-- trace's instance: the chains it holds by tag came through the link and own no whole-trace
-- part here (as health counts it, schema 11); a chain whose entry a span marks keeps its part.
SELECT
    TraceId,
    groupArray(SpanId),
    groupArray(ParentSpanId),
    groupArray(service),
    groupArray(name),
    groupArray(kind),
    groupArray(start_ns),
    groupArray(Duration),
    groupArray(entry_ids),
    if(max(linked_root) = 1, [], arraySort(groupUniqArrayArray(chains))) AS Chains,
    arraySort(groupUniqArrayIf(fields, tagged = 0)) AS UntaggedFields,
    max(root_environment) AS Environment
FROM (
{{spans}}
)
GROUP BY TraceId
HAVING min(start_ns) >= {from_ns:Int64} AND min(start_ns) < {to_ns:Int64}
