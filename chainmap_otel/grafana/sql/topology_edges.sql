-- Node Graph edges frame of one chain: the rows of analysis/sql/topology.sql ({{topology}}),
-- with the ids and stats of `chainmap topology --format grafana`.
SELECT
    concat(source, '->', target, ':', if(connection_type = '', 'request', connection_type)) AS id,
    source,
    target,
    calls AS mainstat,
    round(latency_ns[2] / 1e6, 3) AS secondarystat,
    errors AS detail__errors,
    connection_type AS detail__connection_type
FROM (
    -- Calls and errors as chainmap shows them: estimated from the sampling weights (the
    -- stored counts when nothing was sampled), rounded as analysis.topology rounds them.
    SELECT * REPLACE (toUInt64(round(estimated_calls)) AS calls,
                      toUInt64(round(estimated_errors)) AS errors)
    FROM (
{{topology}}
    )
)
ORDER BY source, target, connection_type
