-- Cluster only: a Distributed table over each shard's hourly edge rollup. The rollup job reads
-- the Distributed chainmap_edge_minute (every shard's minute rows), merges them per hour and
-- inserts anywhere: readers merge in their GROUP BY.

CREATE TABLE IF NOT EXISTS "{{db}}"."chainmap_edge_hour" {{on_cluster}}
AS "{{db}}"."chainmap_edge_hour_local"
ENGINE = Distributed('{{cluster}}', '{{db}}', 'chainmap_edge_hour_local', rand());
