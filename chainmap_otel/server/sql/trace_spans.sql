-- Every column of one trace's spans, earliest first, at most {cap:UInt32} of them.
-- {{window}} is empty or a Timestamp range from otel_traces_trace_id_ts (bound values).
SELECT toUnixTimestamp64Nano(Timestamp) AS start_ns,
       SpanId,
       ParentSpanId,
       toString(ServiceName),
       toString(SpanName),
       lower(replaceOne(toString(SpanKind), 'SPAN_KIND_', '')) AS kind,
       Duration,
       lower(replaceOne(toString(StatusCode), 'STATUS_CODE_', '')) AS status,
       StatusMessage,
       mapApply((k, v) -> (toString(k), v), SpanAttributes),
       mapApply((k, v) -> (toString(k), v), ResourceAttributes),
       toString(ScopeName),
       ScopeVersion,
       arrayMap(t -> toUnixTimestamp64Nano(t), Events.Timestamp),
       Events.Name,
       arrayMap(m -> mapApply((k, v) -> (toString(k), v), m), Events.Attributes),
       Links.TraceId,
       Links.SpanId,
       Links.TraceState,
       arrayMap(m -> mapApply((k, v) -> (toString(k), v), m), Links.Attributes)
FROM {{db}}.otel_traces
WHERE TraceId = {trace_id:String} {{window}}
ORDER BY Timestamp, SpanId
LIMIT {cap:UInt32}
