-- Chain entries counted in the services (schema 15) over every stored minute, per chain and
-- environment ('' for points naming none): what /metrics exports as counters.
SELECT
    toString(ChainId) AS chain,
    toString(Environment) AS environment,
    sum(Entries) AS entries,
    sum(Errors) AS errors,
    sum(DurationCount) AS timed,
    sum(DurationSumMs) AS duration_sum_ms,
    sumMap(mapKeys(DurationBuckets), mapValues(DurationBuckets)) AS buckets
FROM {{db}}.chainmap_entry_counts
WHERE ChainId IN {chains:Array(String)}
GROUP BY chain, environment
ORDER BY chain, environment
