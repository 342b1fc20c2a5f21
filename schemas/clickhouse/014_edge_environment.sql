-- Environments and sampling on the edge rollup. Each row now belongs to one environment
-- (Environment: the resource's deployment.environment.name, else deployment.environment, of
-- the span that starts the edge: the client or producer span, the root server span for a
-- `user` edge; '' when it has neither) and also sums its calls' sampling weights
-- (EstimatedCalls/EstimatedErrors: OTEP 235 adjusted counts from TraceState's ot=th, 1 per
-- unsampled call, so equal to Calls/Errors for unsampled data). Environment joins the sorting
-- key, so rows of two environments never merge. The rows also hold the span-link edges
-- (producer -> consumer, per minute of the consumer's start), which topology paired live
-- before.
-- The pairing version changed with them (analysis.rollups.edges.PAIRING_VERSION 4), so no
-- row rolled up before is read again: both edge levels are emptied and their states
-- (`edges`, `edges_hour`) removed; the rollup job rebuilds them from the oldest stored span
-- and topology pairs live meanwhile.

ALTER TABLE "{{db}}"."chainmap_edge_minute{{local}}" {{on_cluster}}
    ADD COLUMN IF NOT EXISTS Environment LowCardinality(String) AFTER ChainIds,
    ADD COLUMN IF NOT EXISTS EstimatedCalls SimpleAggregateFunction(sum, Float64) CODEC(ZSTD(1)),
    ADD COLUMN IF NOT EXISTS EstimatedErrors SimpleAggregateFunction(sum, Float64) CODEC(ZSTD(1)),
    MODIFY ORDER BY (Catalog, Minute, Source, Target, ConnectionType, TargetType, ChainIds,
                     Environment);

ALTER TABLE "{{db}}"."chainmap_edge_hour{{local}}" {{on_cluster}}
    ADD COLUMN IF NOT EXISTS Environment LowCardinality(String) AFTER ChainIds,
    ADD COLUMN IF NOT EXISTS EstimatedCalls SimpleAggregateFunction(sum, Float64) CODEC(ZSTD(1)),
    ADD COLUMN IF NOT EXISTS EstimatedErrors SimpleAggregateFunction(sum, Float64) CODEC(ZSTD(1)),
    MODIFY ORDER BY (Catalog, Hour, Source, Target, ConnectionType, TargetType, ChainIds,
                     Environment);

TRUNCATE TABLE IF EXISTS "{{db}}"."chainmap_edge_minute{{local}}" {{on_cluster}};

TRUNCATE TABLE IF EXISTS "{{db}}"."chainmap_edge_hour{{local}}" {{on_cluster}};

ALTER TABLE "{{db}}"."chainmap_rollup_state{{local}}" {{on_cluster}}
    DELETE WHERE Rollup IN ('edges', 'edges_hour')
    SETTINGS mutations_sync = 2;
