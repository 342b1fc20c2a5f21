-- The servicegraph connector's latency histograms on the edge rollup: per edge row, the
-- calls per bucket of the client and of the server latency (ClientBuckets/ServerBuckets,
-- keyed by the bucket's upper bound in ns, max UInt64 for +Inf; the bounds are the
-- connector's defaults, analysis.rollups.edges.LATENCY_BOUNDS_NS) and the latency sums in ns
-- (ClientSum/ServerSum). Readers merge them with sumMap and sum, like Calls.
-- Rows rolled up before this version have no buckets, so both edge levels are emptied and
-- their rollup states (`edges`, `edges_hour`; not `entries`, the inferred entries) removed:
-- the rollup job then rebuilds them from the oldest stored span, and topology pairs live
-- meanwhile.

ALTER TABLE "{{db}}"."chainmap_edge_minute{{local}}" {{on_cluster}}
    ADD COLUMN IF NOT EXISTS ClientBuckets SimpleAggregateFunction(sumMap, Map(UInt64, UInt64)) CODEC(ZSTD(1)),
    ADD COLUMN IF NOT EXISTS ClientSum SimpleAggregateFunction(sum, UInt64) CODEC(ZSTD(1)),
    ADD COLUMN IF NOT EXISTS ServerBuckets SimpleAggregateFunction(sumMap, Map(UInt64, UInt64)) CODEC(ZSTD(1)),
    ADD COLUMN IF NOT EXISTS ServerSum SimpleAggregateFunction(sum, UInt64) CODEC(ZSTD(1));

ALTER TABLE "{{db}}"."chainmap_edge_hour{{local}}" {{on_cluster}}
    ADD COLUMN IF NOT EXISTS ClientBuckets SimpleAggregateFunction(sumMap, Map(UInt64, UInt64)) CODEC(ZSTD(1)),
    ADD COLUMN IF NOT EXISTS ClientSum SimpleAggregateFunction(sum, UInt64) CODEC(ZSTD(1)),
    ADD COLUMN IF NOT EXISTS ServerBuckets SimpleAggregateFunction(sumMap, Map(UInt64, UInt64)) CODEC(ZSTD(1)),
    ADD COLUMN IF NOT EXISTS ServerSum SimpleAggregateFunction(sum, UInt64) CODEC(ZSTD(1));

TRUNCATE TABLE IF EXISTS "{{db}}"."chainmap_edge_minute{{local}}" {{on_cluster}};

TRUNCATE TABLE IF EXISTS "{{db}}"."chainmap_edge_hour{{local}}" {{on_cluster}};

ALTER TABLE "{{db}}"."chainmap_rollup_state{{local}}" {{on_cluster}}
    DELETE WHERE Rollup IN ('edges', 'edges_hour')
    SETTINGS mutations_sync = 2;
