-- Node Graph nodes frame of one chain from the same edge rows: every edge endpoint is a node;
-- a node's calls and errors are the calls it received (the user node's: the calls it made);
-- its type is the highest ranked of its edges' (service > user, caller > database >
-- messaging > virtual) and a caller:<service> node is titled by its service, as
-- analysis.topology.build_nodes and Node.title decide.
SELECT
    node.1 AS id,
    if(subtitle = 'caller', substring(id, length('caller:') + 1), id) AS title,
    argMax(node.2, transform(node.2, ['service', 'user', 'caller', 'database', 'messaging',
                                      'virtual'], [4, 3, 3, 2, 1, 0], 0)) AS subtitle,
    sum(node.3) AS mainstat,
    round(if(mainstat > 0, sum(node.4) / mainstat, 0), 6) AS secondarystat,
    round(1 - secondarystat, 6) AS arc__success,
    secondarystat AS arc__failed
FROM (
    -- Calls and errors as chainmap shows them: estimated from the sampling weights (the
    -- stored counts when nothing was sampled), rounded as analysis.topology rounds them.
    SELECT * REPLACE (toUInt64(round(estimated_calls)) AS calls,
                      toUInt64(round(estimated_errors)) AS errors)
    FROM (
{{topology}}
    )
)
ARRAY JOIN [
    (target, target_type, calls, errors),
    (source, multiIf(source = 'user', 'user', startsWith(source, 'caller:'), 'caller', 'service'),
     if(source = 'user', calls, 0), if(source = 'user', errors, 0))
] AS node
GROUP BY id
ORDER BY id
