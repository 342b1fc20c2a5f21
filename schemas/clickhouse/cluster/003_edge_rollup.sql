-- Cluster only: Distributed tables over each shard's edge rollup and rollup state. The rollup
-- job pairs spans through the Distributed otel_traces (a trace lives on one shard), inserts
-- its rows anywhere (they merge in the reader's GROUP BY) and keeps one state for the cluster.

CREATE TABLE IF NOT EXISTS "{{db}}"."chainmap_edge_minute" {{on_cluster}}
AS "{{db}}"."chainmap_edge_minute_local"
ENGINE = Distributed('{{cluster}}', '{{db}}', 'chainmap_edge_minute_local', rand());

CREATE TABLE IF NOT EXISTS "{{db}}"."chainmap_rollup_state" {{on_cluster}}
AS "{{db}}"."chainmap_rollup_state_local"
ENGINE = Distributed('{{cluster}}', '{{db}}', 'chainmap_rollup_state_local', cityHash64(Rollup, Catalog));
