-- One slice of the hourly edge rollup: chainmap_edge_minute's rows of the whole hours
-- [{start}, {end}) merged per hour (UTC) into chainmap_edge_hour, keeping every key column:
-- counts (stored and estimated) and latency sums summed, histogram buckets summed per bound (sumMap), t-digest
-- states merged (-MergeState keeps a state), first/last seen min/max.
-- Bound: {catalog:UInt64}, {start:Int64} / {end:Int64} (Unix seconds, whole hours).
INSERT INTO {{db}}.chainmap_edge_hour
    (Catalog, Hour, Source, Target, ConnectionType, TargetType, ChainIds, Environment,
     Calls, Errors, EstimatedCalls, EstimatedErrors, Latency, FirstSeen, LastSeen,
     ClientBuckets, ClientSum, ServerBuckets, ServerSum)
SELECT
    Catalog,
    toDateTime(intDiv(toUnixTimestamp(Minute), 3600) * 3600) AS hour,
    Source,
    Target,
    ConnectionType,
    TargetType,
    ChainIds,
    Environment,
    sum(Calls),
    sum(Errors),
    sum(EstimatedCalls),
    sum(EstimatedErrors),
    quantilesTDigestMergeState(0.5, 0.95, 0.99)(Latency),
    min(FirstSeen),
    max(LastSeen),
    sumMap(ClientBuckets),
    sum(ClientSum),
    sumMap(ServerBuckets),
    sum(ServerSum)
FROM {{db}}.chainmap_edge_minute
WHERE Catalog = {catalog:UInt64}
  AND Minute >= toDateTime({start:Int64})
  AND Minute < toDateTime({end:Int64})
GROUP BY Catalog, hour, Source, Target, ConnectionType, TargetType, ChainIds, Environment
SETTINGS insert_distributed_sync = 1
