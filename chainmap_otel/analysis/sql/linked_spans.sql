-- The spans of {{span_window}} (every column of otel_traces, TraceId != ''), each with
-- linked_chains: the chains held above it through its span links (linked_chains.sql), empty
-- for a tagged span or one without links. One read of the spans: the linked chains (a row
-- per linking span {{link_heir}} admits, few) are gathered once, as a scalar, and looked up by TraceId
-- and SpanId (concatenated: both have a fixed length) with transform, a hash lookup,
-- evaluated for the spans with links {{link_heir}} admits only (`Links.TraceId.size0`, the arrays'
-- lengths, tested first); no span is joined with anything.
WITH (
    SELECT (groupArray(concat(linked_trace, linked_span)), groupArray(linked_chains))
    FROM ({{linked_chains}})
) AS linked_found
SELECT
    *,
    if(`Links.TraceId.size0` > 0 AND {{link_heir}},
       linked_found.2[transform(concat(TraceId, SpanId), linked_found.1,
                                arrayEnumerate(linked_found.1), toUInt32(0))],
       CAST([], 'Array(String)')) AS linked_chains
FROM {{db}}.otel_traces
WHERE ({{span_window}})
  AND TraceId != ''
