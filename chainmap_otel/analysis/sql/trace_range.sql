-- The Collector's lookup table: the seconds a trace's spans start in (bounds the scan).
SELECT toUnixTimestamp(min(Start)), toUnixTimestamp(max(End)), count()
FROM {{db}}.otel_traces_trace_id_ts
WHERE TraceId = {trace_id:String}
