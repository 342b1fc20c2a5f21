-- Cluster only: the Distributed tables over the edge rollups, the trace summary, the merged
-- traces and the critical paths have their own column lists, so they get version 14's
-- columns too; the local tables were altered, emptied and their states removed on every
-- node above.

ALTER TABLE "{{db}}"."chainmap_edge_minute" {{on_cluster}}
    ADD COLUMN IF NOT EXISTS Environment LowCardinality(String) AFTER ChainIds,
    ADD COLUMN IF NOT EXISTS EstimatedCalls SimpleAggregateFunction(sum, Float64),
    ADD COLUMN IF NOT EXISTS EstimatedErrors SimpleAggregateFunction(sum, Float64);

ALTER TABLE "{{db}}"."chainmap_edge_hour" {{on_cluster}}
    ADD COLUMN IF NOT EXISTS Environment LowCardinality(String) AFTER ChainIds,
    ADD COLUMN IF NOT EXISTS EstimatedCalls SimpleAggregateFunction(sum, Float64),
    ADD COLUMN IF NOT EXISTS EstimatedErrors SimpleAggregateFunction(sum, Float64);

ALTER TABLE "{{db}}"."chainmap_trace_summary" {{on_cluster}}
    ADD COLUMN IF NOT EXISTS RootEnvironment SimpleAggregateFunction(max, String);

ALTER TABLE "{{db}}"."chainmap_trace_merged" {{on_cluster}}
    ADD COLUMN IF NOT EXISTS RootEnvironment LowCardinality(String);

ALTER TABLE "{{db}}"."chainmap_critical_path" {{on_cluster}}
    ADD COLUMN IF NOT EXISTS Environment LowCardinality(String);
