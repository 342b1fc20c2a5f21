-- Cluster only: the Distributed tables over the edge rollups have their own column lists
-- (copied from the local tables when they were created), so they get the histogram columns
-- too; the local tables were altered, emptied and their states removed on every node above.

ALTER TABLE "{{db}}"."chainmap_edge_minute" {{on_cluster}}
    ADD COLUMN IF NOT EXISTS ClientBuckets SimpleAggregateFunction(sumMap, Map(UInt64, UInt64)),
    ADD COLUMN IF NOT EXISTS ClientSum SimpleAggregateFunction(sum, UInt64),
    ADD COLUMN IF NOT EXISTS ServerBuckets SimpleAggregateFunction(sumMap, Map(UInt64, UInt64)),
    ADD COLUMN IF NOT EXISTS ServerSum SimpleAggregateFunction(sum, UInt64);

ALTER TABLE "{{db}}"."chainmap_edge_hour" {{on_cluster}}
    ADD COLUMN IF NOT EXISTS ClientBuckets SimpleAggregateFunction(sumMap, Map(UInt64, UInt64)),
    ADD COLUMN IF NOT EXISTS ClientSum SimpleAggregateFunction(sum, UInt64),
    ADD COLUMN IF NOT EXISTS ServerBuckets SimpleAggregateFunction(sumMap, Map(UInt64, UInt64)),
    ADD COLUMN IF NOT EXISTS ServerSum SimpleAggregateFunction(sum, UInt64);
