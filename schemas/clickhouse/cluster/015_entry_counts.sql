-- Cluster only: a Distributed table over each shard's entry counts. A cumulative series'
-- points go to one shard (by Series); delta points (Series 0) spread by chain and minute.
-- Serve's metrics receiver inserts and looks up a series' last point through it.

CREATE TABLE IF NOT EXISTS "{{db}}"."chainmap_entry_counts" {{on_cluster}}
AS "{{db}}"."chainmap_entry_counts_local"
ENGINE = Distributed('{{cluster}}', '{{db}}', 'chainmap_entry_counts_local',
    if(Series = 0, cityHash64(ChainId, Minute), Series));
