-- Cluster only: the Distributed tables over the edge rollups have their own column lists,
-- so they get the environment and estimated-count columns too; the local tables were
-- altered, emptied and their states removed on every node above.

ALTER TABLE "{{db}}"."chainmap_edge_minute" {{on_cluster}}
    ADD COLUMN IF NOT EXISTS Environment LowCardinality(String) AFTER ChainIds,
    ADD COLUMN IF NOT EXISTS EstimatedCalls SimpleAggregateFunction(sum, Float64),
    ADD COLUMN IF NOT EXISTS EstimatedErrors SimpleAggregateFunction(sum, Float64);

ALTER TABLE "{{db}}"."chainmap_edge_hour" {{on_cluster}}
    ADD COLUMN IF NOT EXISTS Environment LowCardinality(String) AFTER ChainIds,
    ADD COLUMN IF NOT EXISTS EstimatedCalls SimpleAggregateFunction(sum, Float64),
    ADD COLUMN IF NOT EXISTS EstimatedErrors SimpleAggregateFunction(sum, Float64);
