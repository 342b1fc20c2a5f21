-- The spans of the traces {trace_ids:Array(String)} of chain instances, read from
-- {from_ns:Int64} to {to_ns:Int64} ns: what the critical-path walk reads, plus the
-- messaging destination a producer span sends to (the queue a hop waits in).
SELECT
    TraceId,
    SpanId,
    ParentSpanId,
    toString(ServiceName),
    toString(SpanName),
    lower(replaceOne(toString(SpanKind), 'SPAN_KIND_', '')),
    toUnixTimestamp64Nano(Timestamp) AS start_ns,
    Duration,
    SpanAttributes['chain.entry_ids'],
    {{destination_sql}}
FROM {{db}}.otel_traces
WHERE Timestamp >= fromUnixTimestamp64Nano({from_ns:Int64})
  AND Timestamp < fromUnixTimestamp64Nano({to_ns:Int64})
  AND TraceId IN {trace_ids:Array(String)}
ORDER BY TraceId, start_ns, SpanId
LIMIT {max_spans:UInt32}
