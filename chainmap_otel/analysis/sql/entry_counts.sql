-- Chain entries counted in the services (schema 15), per chain, in the whole minutes
-- [{first_minute}, {after_minute}) (Unix seconds) and the window's environment.
SELECT
    toString(ChainId) AS chain,
    sum(Entries) AS entries,
    sum(Errors) AS errors,
    sum(DurationCount) AS timed,
    sum(DurationSumMs) AS duration_sum_ms,
    sumMap(mapKeys(DurationBuckets), mapValues(DurationBuckets)) AS buckets
FROM {{db}}.chainmap_entry_counts
WHERE Minute >= toDateTime({first_minute:Int64}) AND Minute < toDateTime({after_minute:Int64})
  AND {{row_environment}}
GROUP BY chain
ORDER BY chain
