-- Per chain, over every stored minute: entry-span calls, errors, duration sum and the
-- log-scale latency buckets. Tagged rows count for their chain; untagged root rows are
-- classified by the chains' entry rules ({{classify}}, as analysis.health does).
-- Bound: {chains:Array(String)} and the classifier's parameters.
SELECT chain,
       sum(Calls) AS calls,
       sum(Errors) AS errors,
       sum(DurationSum) AS duration_ns,
       sumMap(LatencyBuckets) AS buckets,
       min(Minute) AS first_minute
FROM (
    SELECT toString(ChainId) AS chain, Minute, Calls, Errors, DurationSum, LatencyBuckets
    FROM {{db}}.chainmap_chain_minute
    WHERE ChainId IN {chains:Array(String)}
    UNION ALL
    SELECT arrayJoin({{classify}}) AS chain, Minute, Calls, Errors, DurationSum, LatencyBuckets
    FROM {{db}}.chainmap_chain_minute
    WHERE ChainId = ''
)
WHERE chain IN {chains:Array(String)}
GROUP BY chain
