-- Chain {chain:String}'s own entry span in each trace with a span starting in
-- [{start_ns:Int64}, {end_ns:Int64} + {slack_ns:Int64}) and passing {{rows}}: the span whose
-- chain.entry_ids names the chain (the processor or the Collector's OTTL marks it), else the
-- trace's root span (an untagged trace classified from its root). One row per trace:
-- EFound 1, ENs the entry span's duration, EFailed 1 when its status is Error. Trace search
-- ranks and filters a chain's traces by it (typical_trace.sql reads the mark the same way).
SELECT
    TraceId,
    toUInt8(1) AS EFound,
    if(countIf(marked) > 0, maxIf(Duration, marked), maxIf(Duration, ParentSpanId = ''))
        AS ENs,
    toUInt8(if(countIf(marked) > 0, countIf(marked AND failed) > 0,
               countIf(ParentSpanId = '' AND failed) > 0)) AS EFailed
FROM (
    SELECT
        TraceId,
        ParentSpanId,
        Duration,
        StatusCode IN ('Error', 'STATUS_CODE_ERROR') AS failed,
        position(SpanAttributes['chain.entry_ids'], {chain:String}) > 0
            AND has(splitByChar(',', SpanAttributes['chain.entry_ids']), {chain:String}) AS marked
    FROM {{db}}.otel_traces
    WHERE Timestamp >= fromUnixTimestamp64Nano({start_ns:Int64})
      AND Timestamp < fromUnixTimestamp64Nano({end_ns:Int64} + {slack_ns:Int64})
      AND TraceId != ''
      AND {{rows}}
      AND (ParentSpanId = ''
           OR position(SpanAttributes['chain.entry_ids'], {chain:String}) > 0)
)
GROUP BY TraceId
