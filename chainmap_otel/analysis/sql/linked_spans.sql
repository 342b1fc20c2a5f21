-- The spans of {{span_window}} (every column of otel_traces, TraceId != ''), each with
-- linked_chains: the chains held above it through its span links (linked_chains.sql), empty
-- for a tagged span or one without links. Split in two so that only the untagged spans with
-- links (`Links.TraceId.size0`, read before anything else) are joined with the linked
-- chains; every other span passes through as read.
SELECT *, CAST([], 'Array(String)') AS linked_chains
FROM {{db}}.otel_traces
WHERE ({{span_window}})
  AND TraceId != ''
  AND (`Links.TraceId.size0` = 0 OR SpanAttributes['chain.ids'] != '')
UNION ALL
SELECT * EXCEPT (linked_trace, linked_span)
FROM (
    SELECT *
    FROM {{db}}.otel_traces
    WHERE `Links.TraceId.size0` > 0
      AND ({{span_window}})
      AND TraceId != ''
      AND SpanAttributes['chain.ids'] = ''
) AS s
LEFT JOIN ({{linked_chains}}) AS l ON l.linked_trace = s.TraceId AND l.linked_span = s.SpanId
