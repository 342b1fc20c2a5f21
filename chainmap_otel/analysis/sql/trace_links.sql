-- The traces linked to one trace through span links, both ways: 'linked_from' rows are spans of
-- other traces whose links point to a span of this trace (a message's consumers); 'links_to'
-- rows are the spans of other traces this trace's spans link to ({link_traces:Array(String)} /
-- {link_spans:Array(String)}). Both are read from {linked_start:Int64} to {linked_end:Int64}
-- ns, around the trace: span links carry no index, hence the bounded range and
-- {max_linked:UInt32} rows per direction.
-- Columns: direction, trace id, span id, service, name, kind, start ns, duration ns, status,
-- the span of this trace the link joins.
SELECT * FROM (
    SELECT
        'linked_from' AS direction,
        TraceId,
        SpanId,
        toString(ServiceName),
        toString(SpanName),
        lower(replaceOne(toString(SpanKind), 'SPAN_KIND_', '')),
        toUnixTimestamp64Nano(Timestamp) AS start_ns,
        Duration,
        lower(replaceOne(toString(StatusCode), 'STATUS_CODE_', '')),
        link.2 AS joined_span
    FROM {{db}}.otel_traces
    ARRAY JOIN arrayZip(`Links.TraceId`, `Links.SpanId`) AS link
    WHERE Timestamp >= fromUnixTimestamp64Nano({linked_start:Int64})
      AND Timestamp < fromUnixTimestamp64Nano({linked_end:Int64})
      AND has(`Links.TraceId`, {trace_id:String})
      AND link.1 = {trace_id:String}
      AND TraceId != {trace_id:String}
    ORDER BY start_ns, SpanId
    LIMIT {max_linked:UInt32}
)
UNION ALL
SELECT * FROM (
    SELECT
        'links_to' AS direction,
        TraceId,
        SpanId,
        toString(ServiceName),
        toString(SpanName),
        lower(replaceOne(toString(SpanKind), 'SPAN_KIND_', '')),
        toUnixTimestamp64Nano(Timestamp) AS start_ns,
        Duration,
        lower(replaceOne(toString(StatusCode), 'STATUS_CODE_', '')),
        '' AS joined_span
    FROM {{db}}.otel_traces
    WHERE notEmpty({link_traces:Array(String)})
      AND TraceId IN {link_traces:Array(String)}
      AND SpanId IN {link_spans:Array(String)}
      AND Timestamp >= fromUnixTimestamp64Nano({linked_start:Int64})
      AND Timestamp < fromUnixTimestamp64Nano({linked_end:Int64})
    ORDER BY start_ns, SpanId
    LIMIT {max_linked:UInt32}
)
