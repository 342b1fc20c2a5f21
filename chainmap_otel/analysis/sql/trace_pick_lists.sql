-- The search form's pick lists: the services with spans starting in
-- [{start_ns:Int64}, {end_ns:Int64}) (service = '') or the span names of {service:String},
-- sorted by name as Jaeger's lists are, at most {limit:UInt32}. otel_traces is sorted by
-- (ServiceName, SpanName, time), so both read little more than the window's key columns.
SELECT DISTINCT {{picked}} AS value
FROM {{db}}.otel_traces
WHERE Timestamp >= fromUnixTimestamp64Nano({start_ns:Int64})
  AND Timestamp < fromUnixTimestamp64Nano({end_ns:Int64})
  AND ({service:String} = '' OR ServiceName = {service:String})
ORDER BY value
LIMIT {limit:UInt32}
