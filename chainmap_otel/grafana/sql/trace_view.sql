-- One trace for Grafana's trace view (query format 3): the column aliases Grafana's trace
-- data frame reads, narrowed by the Collector's otel_traces_trace_id_ts lookup table, as the
-- ClickHouse datasource's own trace-id query does. {{trace_id}}: a quoted trace id.
SELECT
    TraceId AS traceID,
    SpanId AS spanID,
    ParentSpanId AS parentSpanID,
    ServiceName AS serviceName,
    SpanName AS operationName,
    multiply(toUnixTimestamp64Nano(Timestamp), 0.000001) AS startTime,
    multiply(Duration, 0.000001) AS duration,
    arrayMap(key -> map('key', key, 'value', SpanAttributes[key]), mapKeys(SpanAttributes)) AS tags,
    arrayMap(key -> map('key', key, 'value', ResourceAttributes[key]), mapKeys(ResourceAttributes))
        AS serviceTags,
    if(StatusCode IN ('Error', 'STATUS_CODE_ERROR'), 2, 0) AS statusCode
FROM {{db}}.otel_traces
WHERE TraceId = {{trace_id}}
  AND Timestamp >= (SELECT min(Start) FROM {{db}}.otel_traces_trace_id_ts WHERE TraceId = {{trace_id}})
  AND Timestamp <= (SELECT max(End) + 1 FROM {{db}}.otel_traces_trace_id_ts WHERE TraceId = {{trace_id}})
ORDER BY startTime
