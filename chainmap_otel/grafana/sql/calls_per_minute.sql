-- Entry calls per chain over time (one series per chain), from chainmap_chain_minute with the
-- untagged root rows classified by the catalog's entry rules ({{classify}}).
SELECT $__timeInterval(Minute) AS time, chain, sum(Calls) AS calls
FROM (
    SELECT Minute, toString(ChainId) AS chain, Calls
    FROM {{db}}.chainmap_chain_minute
    WHERE ChainId != '' AND $__timeFilter(Minute)
    UNION ALL
    SELECT Minute, arrayJoin({{classify}}) AS chain, Calls
    FROM {{db}}.chainmap_chain_minute
    WHERE ChainId = '' AND $__timeFilter(Minute)
)
WHERE chain IN ({{chain_ids}})
GROUP BY time, chain
ORDER BY time, chain
