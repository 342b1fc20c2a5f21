-- Entry traces stored per chain in one environment, from the spans (chainmap_chain_minute
-- has no environment): the spans that mark a chain's entry, as chainmap_chain_minute_mv
-- counts them, in the same minutes.
SELECT ChainId AS chain, count() AS stored
FROM {{db}}.otel_traces
ARRAY JOIN arrayFilter(x -> x != '', splitByChar(',', SpanAttributes['chain.entry_ids'])) AS ChainId
WHERE Timestamp >= toDateTime64({first_minute:Int64}, 9)
  AND Timestamp < toDateTime64({after_minute:Int64}, 9)
  AND lower(SpanAttributes['chain.entry']) = 'true'
  AND (SpanAttributes['chain.tagged_by'] != 'collector' OR ParentSpanId = '')
  AND ChainId IN {chains:Array(String)}
  AND {{span_environment}}
GROUP BY chain
