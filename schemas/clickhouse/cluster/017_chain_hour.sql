-- Cluster only: a Distributed table over each shard's hourly entry rows (each shard's view
-- fills its own from its chainmap_chain_minute_local): readers merge in their GROUP BY.

CREATE TABLE IF NOT EXISTS "{{db}}"."chainmap_chain_hour" {{on_cluster}}
AS "{{db}}"."chainmap_chain_hour_local"
ENGINE = Distributed('{{cluster}}', '{{db}}', 'chainmap_chain_hour_local', rand());
