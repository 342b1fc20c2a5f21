-- Cluster only: a Distributed table over each shard's merged traces. The rollup job merges
-- the summary through its Distributed table (a trace's rows live on one shard) and inserts
-- one row per trace, so any shard may hold it.

CREATE TABLE IF NOT EXISTS "{{db}}"."chainmap_trace_merged" {{on_cluster}}
AS "{{db}}"."chainmap_trace_merged_local"
ENGINE = Distributed('{{cluster}}', '{{db}}', 'chainmap_trace_merged_local', cityHash64(TraceId));
