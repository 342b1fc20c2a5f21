-- Chain entries counted in the services (schema 15) over windows that end together, per chain
-- and environment, in one read: for each start of {starts:Array(Int64)} (Unix seconds, whole
-- minutes; the first is the main window's) the entries and errors in [start, {after_minute});
-- the main window's duration histogram; the first minute the chain was ever counted; and per
-- start the first minute of the chain's stored (tagged) entry traces at or after it
-- (4294967295 where none), so a caller can tell whether counting had begun before the traces
-- a window holds. Chains {chains:Array(String)}, the window's environment.
WITH
    counted AS (
        SELECT
            toString(ChainId) AS chain,
            toString(Environment) AS environment,
            sumForEach(arrayMap(s -> if(Minute >= toDateTime(s), Entries, 0),
                                {starts:Array(Int64)})) AS entries,
            sumForEach(arrayMap(s -> if(Minute >= toDateTime(s), Errors, 0),
                                {starts:Array(Int64)})) AS errors,
            sumIf(DurationCount, Minute >= toDateTime({starts:Array(Int64)}[1])) AS timed,
            sumIf(DurationSumMs, Minute >= toDateTime({starts:Array(Int64)}[1])) AS duration_sum_ms,
            sumMapIf(mapKeys(DurationBuckets), mapValues(DurationBuckets),
                     Minute >= toDateTime({starts:Array(Int64)}[1])) AS buckets
        FROM {{db}}.chainmap_entry_counts
        WHERE ChainId IN {chains:Array(String)}
          AND Minute >= toDateTime(arrayMin({starts:Array(Int64)}))
          AND Minute < toDateTime({after_minute:Int64})
          AND {{row_environment}}
        GROUP BY chain, environment
    ),
    began AS (
        SELECT toString(ChainId) AS chain, toString(Environment) AS environment,
               toInt64(toUnixTimestamp(min(Minute))) AS first_counted
        FROM {{db}}.chainmap_entry_counts
        WHERE ChainId IN {chains:Array(String)}
          AND Minute < toDateTime({after_minute:Int64})
          AND {{row_environment}}
        GROUP BY chain, environment
    ),
    traced AS (
        SELECT toString(ChainId) AS chain, toString(Environment) AS environment,
               minForEach(arrayMap(s -> if(Minute >= toDateTime(s), toInt64(toUnixTimestamp(Minute)),
                                           toInt64(4294967295)),
                                   {starts:Array(Int64)})) AS first_traced
        FROM {{db}}.chainmap_chain_minute
        WHERE ChainId IN {chains:Array(String)}
          AND Minute >= toDateTime(arrayMin({starts:Array(Int64)}))
          AND Minute < toDateTime({after_minute:Int64})
          AND {{row_environment}}
        GROUP BY chain, environment
    )
SELECT
    if(c.chain != '', c.chain, t.chain) AS chain,
    if(c.chain != '', c.environment, t.environment) AS environment,
    c.entries, c.errors, c.timed, c.duration_sum_ms, c.buckets,
    b.first_counted,
    t.first_traced
FROM (SELECT * FROM counted) AS c
LEFT JOIN began AS b ON b.chain = c.chain AND b.environment = c.environment
FULL OUTER JOIN traced AS t ON t.chain = c.chain AND t.environment = c.environment
ORDER BY chain, environment
