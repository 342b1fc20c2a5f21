-- Cluster only: a Distributed table over each shard's critical paths, sharded by TraceId like
-- the spans; the rollup job inserts through it.

CREATE TABLE IF NOT EXISTS "{{db}}"."chainmap_critical_path" {{on_cluster}}
AS "{{db}}"."chainmap_critical_path_local"
ENGINE = Distributed('{{cluster}}', '{{db}}', 'chainmap_critical_path_local', cityHash64(TraceId));
