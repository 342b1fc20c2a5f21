-- The typical trace of chain {chain_id:String} in the window [start_ns, end_ns): of the
-- chain's traces without an Error span (other than {exclude:String}), the one whose chain
-- latency is nearest the median chain latency of all the chain's traces (ties: lowest
-- TraceId). Chain latency is what the chain's critical path ranks by: the duration of the
-- chain's entry span, else the trace's extent (a trace classified from its root).
-- Membership: the chains a span is tagged with ({{tagged}}) plus, for untagged spans, the
-- chains whose entry rules match it ({{classify}}).
SELECT count() AS traces,
       countIf(errors = 0) AS clean,
       quantileExact(0.5)(latency) AS median,
       arraySort(x -> (abs(x.1 - median), x.2),
                 groupArrayIf((latency, TraceId), errors = 0 AND TraceId != {exclude:String}))[1]
           AS nearest
FROM (
    SELECT TraceId,
           maxIf(Duration, has(splitByChar(',', SpanAttributes['chain.entry_ids']), {chain_id:String}))
               AS entry_duration,
           if(entry_duration > 0, toInt64(entry_duration),
              toInt64(max(toUnixTimestamp64Nano(Timestamp) + Duration)
                      - min(toUnixTimestamp64Nano(Timestamp)))) AS latency,
           countIf(StatusCode IN ('Error', 'STATUS_CODE_ERROR')) AS errors,
           arrayDistinct(arrayConcat(groupUniqArrayArray({{tagged}}),
               groupUniqArrayArrayIf({{classify}}, SpanAttributes['chain.ids'] = ''))) AS chains
    FROM {{db}}.otel_traces
    WHERE {{span_window}} AND TraceId != ''
    GROUP BY TraceId
    HAVING has(chains, {chain_id:String})
)
