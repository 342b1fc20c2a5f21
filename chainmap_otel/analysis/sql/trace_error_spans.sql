-- Every span of the traces {trace_ids:Array(String)} (their first spans start in
-- [{start_ns:Int64}, {end_ns:Int64}), so each span starts before {end_ns:Int64} +
-- {slack_ns:Int64}): the links and, for Error spans, what the error-source columns show.
-- The caller reads only traces with an Error span, at most a search's limit of them.
SELECT
    TraceId,
    SpanId,
    ParentSpanId,
    toUnixTimestamp64Nano(Timestamp) AS start_ns,
    StatusCode IN ('Error', 'STATUS_CODE_ERROR') AS failed,
    if(failed, toString(ServiceName), '') AS service,
    if(failed, toString(SpanName), '') AS name,
    if(failed, StatusMessage, '') AS message
FROM {{db}}.otel_traces
WHERE TraceId IN {trace_ids:Array(String)}
  AND Timestamp >= fromUnixTimestamp64Nano({start_ns:Int64})
  AND Timestamp < fromUnixTimestamp64Nano({end_ns:Int64} + {slack_ns:Int64})
