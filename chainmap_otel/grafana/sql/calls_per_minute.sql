-- Entry calls per chain over time (one series per chain), from health's entry rows
-- ({{entry_rows}}, see chains_overview.sql) over the dashboard's time range: the estimate of
-- the unsampled fleet (sums of the entry spans' adjusted counts).
WITH
    intDiv(toInt64(toUnixTimestamp($__fromTime)), 60) * 60 AS gf_scan_start,
    toInt64(toUnixTimestamp($__toTime)) AS gf_end,
    (SELECT toInt64(max(Watermark)) FROM {{db}}.chainmap_rollup_state
     WHERE Rollup = 'entries' AND Catalog = 0) AS gf_entries_watermark,
    greatest(gf_entries_watermark, gf_scan_start * 1000000000) AS gf_inf_start,
    gf_end * 1000000000 AS gf_inf_end
SELECT $__timeInterval(Minute) AS time, chain, sum(AdjustedCalls) AS calls
FROM ({{entry_rows}}
)
GROUP BY time, chain
ORDER BY time, chain
