-- Node Graph nodes frame of one chain from the same edge rows: every edge endpoint is a node;
-- a node's calls and errors are the calls it received (the user node's: the calls it made);
-- its type is the highest ranked of its edges' (service > user > database > messaging >
-- virtual), as analysis.topology.build_nodes decides.
SELECT
    node.1 AS id,
    node.1 AS title,
    argMax(node.2, transform(node.2, ['service', 'user', 'database', 'messaging', 'virtual'],
                             [4, 3, 2, 1, 0], 0)) AS subtitle,
    sum(node.3) AS mainstat,
    round(if(mainstat > 0, sum(node.4) / mainstat, 0), 6) AS secondarystat,
    round(1 - secondarystat, 6) AS arc__success,
    secondarystat AS arc__failed
FROM (
{{topology}}
)
ARRAY JOIN [
    (target, target_type, calls, errors),
    (source, if(source = 'user', 'user', 'service'),
     if(source = 'user', calls, 0), if(source = 'user', errors, 0))
] AS node
GROUP BY id
ORDER BY id
