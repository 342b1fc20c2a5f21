-- Cluster only: the Distributed tables over the per-minute entry tables get version 13's
-- columns (a Distributed table does not follow its local table's ALTERs).

ALTER TABLE "{{db}}"."chainmap_chain_minute" {{on_cluster}}
    ADD COLUMN IF NOT EXISTS Environment LowCardinality(String),
    ADD COLUMN IF NOT EXISTS AdjustedCalls SimpleAggregateFunction(sum, Float64),
    ADD COLUMN IF NOT EXISTS AdjustedErrors SimpleAggregateFunction(sum, Float64),
    ADD COLUMN IF NOT EXISTS AdjustedDurationSum SimpleAggregateFunction(sum, Float64),
    ADD COLUMN IF NOT EXISTS AdjustedLatency
        AggregateFunction(quantilesTDigestWeighted(0.5, 0.95, 0.99), UInt64, UInt64),
    ADD COLUMN IF NOT EXISTS AdjustedLatencyBuckets
        SimpleAggregateFunction(sumMap, Tuple(Array(UInt16), Array(Float64))),
    ADD COLUMN IF NOT EXISTS SampledCalls SimpleAggregateFunction(sum, UInt64);

ALTER TABLE "{{db}}"."chainmap_inferred_entry_minute" {{on_cluster}}
    ADD COLUMN IF NOT EXISTS Environment LowCardinality(String),
    ADD COLUMN IF NOT EXISTS AdjustedCalls SimpleAggregateFunction(sum, Float64),
    ADD COLUMN IF NOT EXISTS AdjustedErrors SimpleAggregateFunction(sum, Float64),
    ADD COLUMN IF NOT EXISTS AdjustedDurationSum SimpleAggregateFunction(sum, Float64),
    ADD COLUMN IF NOT EXISTS AdjustedLatency
        AggregateFunction(quantilesTDigestWeighted(0.5, 0.95, 0.99), UInt64, UInt64),
    ADD COLUMN IF NOT EXISTS AdjustedLatencyBuckets
        SimpleAggregateFunction(sumMap, Tuple(Array(UInt16), Array(Float64))),
    ADD COLUMN IF NOT EXISTS SampledCalls SimpleAggregateFunction(sum, UInt64);
