-- The spans of {{span_window}} as linked_spans.sql gives them, for a window where no span is
-- untagged and has span links (analysis.rollups.edges.has_links): every linked_chains
-- is then empty, and the lookup's planning (tens of ms per query) is left out.
SELECT *, CAST([], 'Array(String)') AS linked_chains
FROM {{db}}.otel_traces
WHERE ({{span_window}})
  AND TraceId != ''
