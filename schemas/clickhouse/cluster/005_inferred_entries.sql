-- Cluster only: a Distributed table over each shard's inferred entries (rows merge in the
-- reader's GROUP BY, like chainmap_chain_minute's).

CREATE TABLE IF NOT EXISTS "{{db}}"."chainmap_inferred_entry_minute" {{on_cluster}}
AS "{{db}}"."chainmap_inferred_entry_minute_local"
ENGINE = Distributed('{{cluster}}', '{{db}}', 'chainmap_inferred_entry_minute_local', rand());
