-- Where the window's spans lie: discovery slices only this stretch, so an empty decade
-- costs one query. Bound: start_ns, end_ns (Int64 UTC nanoseconds).
SELECT
    count(),
    min(toUnixTimestamp64Nano(Timestamp)),
    max(toUnixTimestamp64Nano(Timestamp))
FROM {{db}}.otel_traces
WHERE {{span_window}}
