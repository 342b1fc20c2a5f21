-- Chain entries counted in the services (schema 15) over windows that end together, per chain
-- and environment, in one read: for each start of {starts:Array(Int64)} (Unix seconds, whole
-- minutes; the first is the main window's) the entries and errors in [start, {after_minute}),
-- whether the counts cover that window, and the main window's duration histogram. Chains
-- {chains:Array(String)}, the window's environment. Health reads it, and Grafana's chains
-- overview inlines it, so both apply the same rule:
-- covered: counting had begun ({export_slack_s:Int64} before the chain's first counted minute
-- in the environment, as points are stamped up to an export interval after what they count)
-- by the window's start, or by the first minute of the chain's stored (tagged) entry traces in
-- the window. A row of an environment with the chain's traces and no counts (entries = [])
-- covers only the windows without its traces.
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
        -- Only the chains some service counted: a fleet that counts nothing reads no rows.
        WHERE ChainId IN (SELECT chain FROM counted)
          AND Minute >= toDateTime(arrayMin({starts:Array(Int64)}))
          AND Minute < toDateTime({after_minute:Int64})
          AND {{row_environment}}
        GROUP BY chain, environment
    )
SELECT
    chain,
    environment,
    entries,
    errors,
    timed,
    duration_sum_ms,
    buckets,
    arrayMap((s, seen) -> toUInt8(if(empty(entries), seen = 4294967295,
                                     first_counted - {export_slack_s:Int64} <= greatest(s, seen))),
             {starts:Array(Int64)},
             if(empty(first_traced), arrayResize(emptyArrayInt64(), length({starts:Array(Int64)}),
                                                 toInt64(4294967295)),
                first_traced)) AS covered
FROM (
    SELECT
        if(c.chain != '', c.chain, t.chain) AS chain,
        if(c.chain != '', c.environment, t.environment) AS environment,
        c.entries AS entries, c.errors AS errors, c.timed AS timed,
        c.duration_sum_ms AS duration_sum_ms, c.buckets AS buckets,
        b.first_counted AS first_counted, t.first_traced AS first_traced
    FROM counted AS c
    LEFT JOIN began AS b ON b.chain = c.chain AND b.environment = c.environment
    FULL OUTER JOIN traced AS t ON t.chain = c.chain AND t.environment = c.environment
)
