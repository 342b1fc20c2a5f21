-- Cluster only: a Distributed table over each shard's entry counts, sharded by Series so a
-- cumulative series' points (and the lookup of its last one) stay on one shard; serve's
-- metrics receiver inserts through it.

CREATE TABLE IF NOT EXISTS "{{db}}"."chainmap_entry_counts" {{on_cluster}}
AS "{{db}}"."chainmap_entry_counts_local"
ENGINE = Distributed('{{cluster}}', '{{db}}', 'chainmap_entry_counts_local', Series);
