-- The topology split of analysis.topology.split_window and split_hours, computed by
-- ClickHouse for the dashboard's time range: whole hours inside the hour level's
-- [Since, Watermark) are read from chainmap_edge_hour, the other whole minutes inside the
-- minute level's from chainmap_edge_minute, the rest (the part-minute at the start and the
-- minutes after the watermark) is paired live by trace_edges.sql. Without a rollup for the
-- catalog, the whole range is paired live. {{catalog}}: the catalog's fingerprint.
WITH
    toInt64(toUnixTimestamp($__fromTime)) * 1000000000 AS gf_from_ns,
    toInt64(toUnixTimestamp($__toTime)) * 1000000000 AS gf_to_ns,
    (SELECT toInt64(min(Since)) FROM {{db}}.chainmap_rollup_state
     WHERE Rollup = 'edges' AND Catalog = {{catalog}}) AS gf_since_ns,
    (SELECT toInt64(max(Watermark)) FROM {{db}}.chainmap_rollup_state
     WHERE Rollup = 'edges' AND Catalog = {{catalog}}) AS gf_watermark_ns,
    greatest(intDiv(gf_from_ns + 59999999999, 60000000000) * 60000000000, gf_since_ns) AS gf_first_ns,
    least(intDiv(gf_to_ns, 60000000000) * 60000000000, gf_watermark_ns) AS gf_last_ns,
    gf_watermark_ns > gf_since_ns AND gf_since_ns > 0 AND gf_first_ns < gf_last_ns AS gf_rolled,
    (SELECT toInt64(min(Since)) FROM {{db}}.chainmap_rollup_state
     WHERE Rollup = 'edges_hour' AND Catalog = {{catalog}}) AS gf_hour_since_ns,
    (SELECT toInt64(max(Watermark)) FROM {{db}}.chainmap_rollup_state
     WHERE Rollup = 'edges_hour' AND Catalog = {{catalog}}) AS gf_hour_watermark_ns,
    greatest(intDiv(gf_first_ns + 3599999999999, 3600000000000) * 3600000000000,
             gf_hour_since_ns) AS gf_hour_first_ns,
    least(intDiv(gf_last_ns, 3600000000000) * 3600000000000, gf_hour_watermark_ns)
        AS gf_hour_last_ns,
    gf_rolled AND gf_hour_watermark_ns > gf_hour_since_ns AND gf_hour_since_ns > 0
        AND gf_hour_first_ns < gf_hour_last_ns AS gf_hourly,
    if(gf_hourly, intDiv(gf_hour_first_ns, 1000000000), 0) AS gf_hour_start,
    if(gf_hourly, intDiv(gf_hour_last_ns, 1000000000), 0) AS gf_hour_end,
    if(gf_rolled, intDiv(gf_first_ns, 1000000000), 0) AS gf_minute_head_start,
    if(gf_rolled, intDiv(if(gf_hourly, gf_hour_first_ns, gf_last_ns), 1000000000), 0)
        AS gf_minute_head_end,
    if(gf_hourly, intDiv(gf_hour_last_ns, 1000000000), 0) AS gf_minute_tail_start,
    if(gf_hourly, intDiv(gf_last_ns, 1000000000), 0) AS gf_minute_tail_end,
    gf_from_ns AS gf_head_from,
    if(gf_rolled, gf_first_ns, gf_to_ns) AS gf_head_to,
    if(gf_rolled, gf_last_ns, 0) AS gf_tail_from,
    if(gf_rolled, gf_to_ns, 0) AS gf_tail_to,
    if(gf_head_from < gf_head_to, gf_head_from, 0) AS gf_head_start,
    if(gf_head_from < gf_head_to, gf_head_to, 0) AS gf_head_end,
    if(gf_tail_from < gf_tail_to, gf_tail_from, 0) AS gf_tail_start,
    if(gf_tail_from < gf_tail_to, gf_tail_to, 0) AS gf_tail_end,
    if(gf_head_from < gf_head_to, gf_head_start - {{reach_ns}}, 0) AS gf_read_head_start,
    if(gf_head_from < gf_head_to, gf_head_end + {{reach_ns}}, 0) AS gf_read_head_end,
    if(gf_tail_from < gf_tail_to, gf_tail_start - {{reach_ns}}, 0) AS gf_read_tail_start,
    if(gf_tail_from < gf_tail_to, gf_tail_end + {{reach_ns}}, 0) AS gf_read_tail_end,
    [${chain:sqlstring}] AS gf_wanted
