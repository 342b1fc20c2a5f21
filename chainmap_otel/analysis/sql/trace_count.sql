-- How many spans one trace has, and its extent, before the span cap applies.
SELECT count(),
       min(toUnixTimestamp64Nano(Timestamp)),
       max(toUnixTimestamp64Nano(Timestamp) + Duration)
FROM {{db}}.otel_traces
WHERE TraceId = {trace_id:String} AND {{lookup_range}}
