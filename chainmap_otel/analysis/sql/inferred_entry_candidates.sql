-- Whether sql/inferred_entries.sql can give health a row for the spans starting in
-- [{inf_start:Int64}, {inf_end:Int64}) (ns): a necessary condition, checked per span against its
-- parent alone, so health leaves the live inferred entries out (tens of ms to plan, whatever
-- the range holds) when no span passes it. A span can be such an entry only when it is below
-- the root and either untagged and of a service some entry rule names ({{candidate}}, the
-- rows health keeps), or tagged with a chain that neither its entry marks (set by chainmap's
-- processor, not the Collector's candidates) nor its parent's chain.ids hold, or its parent is
-- untagged or not read (from {inf_reach:Int64} ns before the range, as the live SQL reads).
-- Keep it a necessary condition of inferred_entries.sql's rows.
SELECT count()
FROM (
    SELECT TraceId, ParentSpanId, ServiceName, SpanAttributes['chain.ids'] AS ids,
        if(lower(SpanAttributes['chain.entry']) = 'true'
               AND SpanAttributes['chain.tagged_by'] != 'collector',
           splitByChar(',', SpanAttributes['chain.entry_ids']),
           CAST([], 'Array(String)')) AS entry_ids
    FROM {{db}}.otel_traces
    WHERE Timestamp >= fromUnixTimestamp64Nano({inf_start:Int64})
      AND Timestamp < fromUnixTimestamp64Nano({inf_end:Int64})
      AND TraceId != '' AND ParentSpanId != ''
) AS span
LEFT JOIN (
    SELECT TraceId, SpanId, SpanAttributes['chain.ids'] AS parent_ids
    FROM {{db}}.otel_traces
    WHERE Timestamp >= fromUnixTimestamp64Nano({inf_start:Int64} - {inf_reach:Int64})
      AND Timestamp < fromUnixTimestamp64Nano({inf_end:Int64})
      AND TraceId != ''
) AS parent ON span.TraceId = parent.TraceId AND span.ParentSpanId = parent.SpanId
WHERE (span.ids = '' AND {{candidate}})
   OR (span.ids != ''
       AND (parent.SpanId = '' OR parent.parent_ids = ''
            OR NOT hasAll(arrayConcat(splitByChar(',', parent.parent_ids), span.entry_ids),
                          arrayFilter(x -> x != '', splitByChar(',', span.ids)))))
