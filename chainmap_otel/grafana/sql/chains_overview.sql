-- Chains overview: per chain health over the dashboard's time range with the semantics of
-- chainmap_otel.analysis.health, from the same entry rows ({{entry_rows}}: health's
-- entry_rows_sql, i.e. chainmap_chain_minute with untagged root rows classified by the rules,
-- plus inferred entries rolled up below the entries watermark and paired live above it).
-- The per-minute rows round the range's start down to its minute (as `chainmap health`
-- does); the rate is over the part of the range that has data (first to last entry span); burn rates look back 5m,
-- 30m, 1h, 6h and 3d from the range's end; the SLO tally looks back each chain's SLO window
-- ({{slo_seconds}}). Counts, rates, burn rates and percentiles are the estimate of the
-- unsampled fleet (the Adjusted* columns: each entry span weighs its OTEP 235 adjusted count;
-- percentiles from the weighted digest where an entry was sampled), as health reads them;
-- stored, stored_pct and sampled say what that estimate rests on.
-- Where the services counted a chain's entries before sampling ({{counted_windows}}: health's
-- read of chainmap_entry_counts, with its rule of which windows the counts cover), the
-- counts replace the traces as health's do: traces, errors, rate and error % when they cover
-- the range (counted = 1), the error-rate objective's burn rate over each burn window they
-- cover.
-- {{chains}}: VALUES rows (chain, name, criticality);
-- {{objectives}}: VALUES rows (chain, environment, objective, threshold_ms, budget), threshold
-- 0 = errors, environment '' the chain's own objectives; a chain with objectives of its own
-- in the dashboard's environment ({{environment}}, in {{overridden}}) is judged by those.
WITH
    toInt64(toUnixTimestamp($__toTime)) AS gf_end,
    intDiv(toInt64(toUnixTimestamp($__fromTime)), 60) * 60 AS gf_main_start,
    intDiv(gf_end - 300, 60) * 60 AS gf_w5m,
    intDiv(gf_end - 1800, 60) * 60 AS gf_w30m,
    intDiv(gf_end - 3600, 60) * 60 AS gf_w1h,
    intDiv(gf_end - 21600, 60) * 60 AS gf_w6h,
    intDiv(gf_end - 259200, 60) * 60 AS gf_w3d,
    least(gf_main_start, gf_end - 259200, gf_end - {{max_slo_seconds}}) AS gf_scan_start,
    (SELECT toInt64(max(Watermark)) FROM {{db}}.chainmap_rollup_state
     WHERE Rollup = 'entries' AND Catalog = 0) AS gf_entries_watermark,
    greatest(gf_entries_watermark, gf_scan_start * 1000000000) AS gf_inf_start,
    gf_end * 1000000000 AS gf_inf_end,
    (SELECT (count(), toInt64(toUnixTimestamp64Nano(min(FirstSeen))),
             toInt64(toUnixTimestamp64Nano(max(LastSeen))))
     FROM {{db}}.chainmap_chain_minute
     WHERE Minute >= toDateTime(gf_main_start) AND Minute < toDateTime(gf_end)
       AND {{row_environment}}) AS gf_extent,
    greatest(gf_main_start * 1000000000, gf_extent.2) AS gf_observed_start,
    if(gf_extent.1 = 0, gf_end - gf_main_start,
       (least(gf_end * 1000000000, greatest(gf_extent.3, gf_observed_start + 1000000000))
        - gf_observed_start) / 1e9) AS gf_rate_seconds,
    intDiv(gf_end + 59, 60) * 60 AS gf_after,
    [gf_main_start, gf_w5m, gf_w30m, gf_w1h, gf_w6h, gf_w3d] AS gf_starts,
    gf_counted AS (
    SELECT chain, sumForEach(entries) AS counted_entries, sumForEach(errors) AS counted_errors,
           minForEach(covered) AS counted_covered
    FROM ({{counted_windows}}
    )
    GROUP BY chain
    HAVING max(notEmpty(entries)) = 1
    ),
    gf_tallies AS (
    SELECT
        chain,
        sumIf(AdjustedCalls, Minute >= toDateTime(gf_main_start)) AS calls,
        sumIf(AdjustedErrors, Minute >= toDateTime(gf_main_start)) AS errors,
        sumIf(Calls, Minute >= toDateTime(gf_main_start)) AS stored,
        sumIf(SampledCalls, Minute >= toDateTime(gf_main_start)) AS sampled,
        if(sampled > 0,
           quantilesTDigestWeightedMergeIf(0.5, 0.95, 0.99)(AdjustedLatency,
               Minute >= toDateTime(gf_main_start)),
           quantilesTDigestMergeIf(0.5, 0.95, 0.99)(Latency,
               Minute >= toDateTime(gf_main_start))) AS q,
        (sumIf(AdjustedCalls, Minute >= toDateTime(gf_w5m)),
         sumIf(AdjustedErrors, Minute >= toDateTime(gf_w5m)),
         sumMapIf(AdjustedLatencyBuckets, Minute >= toDateTime(gf_w5m))) AS t5m,
        (sumIf(AdjustedCalls, Minute >= toDateTime(gf_w30m)),
         sumIf(AdjustedErrors, Minute >= toDateTime(gf_w30m)),
         sumMapIf(AdjustedLatencyBuckets, Minute >= toDateTime(gf_w30m))) AS t30m,
        (sumIf(AdjustedCalls, Minute >= toDateTime(gf_w1h)),
         sumIf(AdjustedErrors, Minute >= toDateTime(gf_w1h)),
         sumMapIf(AdjustedLatencyBuckets, Minute >= toDateTime(gf_w1h))) AS t1h,
        (sumIf(AdjustedCalls, Minute >= toDateTime(gf_w6h)),
         sumIf(AdjustedErrors, Minute >= toDateTime(gf_w6h)),
         sumMapIf(AdjustedLatencyBuckets, Minute >= toDateTime(gf_w6h))) AS t6h,
        (sumIf(AdjustedCalls, Minute >= toDateTime(gf_w3d)),
         sumIf(AdjustedErrors, Minute >= toDateTime(gf_w3d)),
         sumMapIf(AdjustedLatencyBuckets, Minute >= toDateTime(gf_w3d))) AS t3d,
        (sumIf(AdjustedCalls, Minute >= toDateTime(slo_start)),
         sumIf(AdjustedErrors, Minute >= toDateTime(slo_start)),
         sumMapIf(AdjustedLatencyBuckets, Minute >= toDateTime(slo_start))) AS tslo
    FROM (
        SELECT chain, Minute, Calls, Latency, AdjustedCalls, AdjustedErrors, AdjustedLatency,
               AdjustedLatencyBuckets, SampledCalls,
               intDiv(gf_end - {{slo_seconds}}, 60) * 60 AS slo_start
        FROM ({{entry_rows}}
        )
        WHERE chain IN ({{chain_order}})
    )
    GROUP BY chain
    )
SELECT * EXCEPT (calls, failed) FROM (
SELECT
    c.chain AS chain,
    c.name AS name,
    c.criticality AS criticality,
    ifNull(n.counted_covered[1], 0) = 1 AS counted,
    if(counted, toFloat64(n.counted_entries[1]), ifNull(t.calls, 0)) AS calls,
    if(counted, toFloat64(n.counted_errors[1]), ifNull(t.errors, 0)) AS failed,
    toUInt64(round(calls)) AS traces,
    round(calls / gf_rate_seconds, 6) AS rate_per_s,
    gf_rate_seconds AS rate_seconds,
    toUInt64(round(failed)) AS errors,
    round(if(calls > 0, 100 * failed / calls, 0), 4) AS error_pct,
    round(if(calls > 0, t.q[1] / 1e6, 0), 3) AS p50_ms,
    round(if(calls > 0, t.q[2] / 1e6, 0), 3) AS p95_ms,
    round(if(calls > 0, t.q[3] / 1e6, 0), 3) AS p99_ms,
    if(o.objectives > 0, o.slo_compliant, NULL) AS slo_compliant,
    if(o.objectives > 0, o.budget_remaining, NULL) AS error_budget_remaining,
    if(o.objectives > 0, o.burn_5m, NULL) AS burn_5m,
    if(o.objectives > 0, o.burn_30m, NULL) AS burn_30m,
    if(o.objectives > 0, o.burn_1h, NULL) AS burn_1h,
    if(o.objectives > 0, o.burn_6h, NULL) AS burn_6h,
    if(o.objectives > 0, o.burn_3d, NULL) AS burn_3d,
    multiIf(o.objectives > 0 AND o.critical > 0, 'critical',
            o.objectives > 0 AND o.degraded > 0, 'degraded',
            calls = 0, 'no_data',
            o.objectives = 0, 'no_slo', 'healthy') AS status,
    ifNull(t.stored, 0) AS stored,
    round(if(t.calls > 0, 100 * t.stored / t.calls, 100), 2) AS stored_pct,
    ifNull(t.sampled, 0) > 0 AS sampled
FROM (SELECT * FROM VALUES('chain String, name String, criticality String',
{{chains}})) AS c
LEFT JOIN gf_tallies AS t ON t.chain = c.chain
LEFT JOIN gf_counted AS n ON n.chain = c.chain
LEFT JOIN (
    SELECT
        chain,
        count() AS objectives,
        min(bad_slo <= budget) AS slo_compliant,
        round(min(1 - bad_slo / budget), 6) AS budget_remaining,
        round(max(bad_5m / budget), 6) AS burn_5m,
        round(max(bad_30m / budget), 6) AS burn_30m,
        round(max(bad_1h / budget), 6) AS burn_1h,
        round(max(bad_6h / budget), 6) AS burn_6h,
        round(max(bad_3d / budget), 6) AS burn_3d,
        countIf((bad_1h / budget > 14.4 AND bad_5m / budget > 14.4)
                OR (bad_6h / budget > 6 AND bad_30m / budget > 6)) AS critical,
        countIf(bad_3d / budget > 1 AND bad_6h / budget > 1) AS degraded
    FROM (
        SELECT
            ob.chain AS chain,
            ob.budget AS budget,
            -- Bad events of one objective in one window: errors, or the calls slower than the
            -- threshold counted from the quarter-power-of-two latency buckets (interpolated).
            -- The error-rate objective over a burn window the counts cover: counted errors /
            -- counted entries (the slo window, i = 6, stays the traces').
            arrayMap((w, i) ->
                if(ob.threshold_ms = 0 AND i <= 5 AND ifNull(cn.counted_covered[i + 1], 0) = 1,
                   if(cn.counted_entries[i + 1] = 0, 0, cn.counted_errors[i + 1] / cn.counted_entries[i + 1]),
                if(w.1 = 0, 0,
                if(ob.threshold_ms = 0, w.2 / w.1,
                   arraySum((k, n) -> n * greatest(0, least(1,
                       k + 1 - 4 * log2(greatest(ob.threshold_ms * 1e6, 1000) / 1000))),
                       w.3.1, w.3.2) / w.1))),
                [tw.t5m, tw.t30m, tw.t1h, tw.t6h, tw.t3d, tw.tslo], [1, 2, 3, 4, 5, 6]) AS bad,
            bad[1] AS bad_5m, bad[2] AS bad_30m, bad[3] AS bad_1h, bad[4] AS bad_6h,
            bad[5] AS bad_3d, bad[6] AS bad_slo
        FROM (SELECT * FROM VALUES('chain String, environment String, objective String, threshold_ms Float64, budget Float64',
{{objectives}})) AS ob
        LEFT JOIN gf_tallies AS tw ON tw.chain = ob.chain
        LEFT JOIN gf_counted AS cn ON cn.chain = ob.chain
        WHERE ob.chain != ''
          AND ob.environment = if((ob.chain, {{environment}}) IN ({{overridden}}), {{environment}}, '')
    )
    GROUP BY chain
) AS o ON o.chain = c.chain
)
ORDER BY
    transform(status, ['critical', 'degraded', 'healthy', 'no_data', 'no_slo'], [0, 1, 2, 3, 4], 5),
    transform(criticality, ['critical', 'high', 'medium', 'low'], [0, 1, 2, 3], 4),
    chain
