-- Every column of one trace's spans, earliest first, at most {cap:UInt32} of them.
-- The lookup range is 1 or a Timestamp range from otel_traces_trace_id_ts (bound values).
-- Maps and the Events/Links arrays come as JSON text: parsing that is far cheaper in
-- Python than decoding thousands of nested Map columns.
SELECT toUnixTimestamp64Nano(Timestamp) AS start_ns,
       SpanId,
       ParentSpanId,
       toString(ServiceName),
       toString(SpanName),
       lower(replaceOne(toString(SpanKind), 'SPAN_KIND_', '')) AS kind,
       Duration,
       lower(replaceOne(toString(StatusCode), 'STATUS_CODE_', '')) AS status,
       StatusMessage,
       toJSONString(mapApply((k, v) -> (toString(k), v), SpanAttributes)),
       toJSONString(mapApply((k, v) -> (toString(k), v), ResourceAttributes)),
       toString(ScopeName),
       ScopeVersion,
       if(empty(Events.Name), '[]', toJSONString(arrayMap(
           (t, n, a) -> (toString(toUnixTimestamp64Nano(t)), n, mapApply((k, v) -> (toString(k), v), a)),
           Events.Timestamp, Events.Name, Events.Attributes))),
       if(empty(Links.SpanId), '[]', toJSONString(arrayMap(
           (t, s, ts, a) -> (t, s, ts, mapApply((k, v) -> (toString(k), v), a)),
           Links.TraceId, Links.SpanId, Links.TraceState, Links.Attributes)))
FROM {{db}}.otel_traces
WHERE TraceId = {trace_id:String} AND {{lookup_range}}
ORDER BY Timestamp, SpanId
LIMIT {cap:UInt32}
