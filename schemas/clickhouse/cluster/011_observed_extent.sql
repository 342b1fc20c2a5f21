-- Cluster only: the Distributed table over chainmap_chain_minute gets version 11's columns (a
-- Distributed table does not follow its local table's ALTERs).

ALTER TABLE "{{db}}"."chainmap_chain_minute" {{on_cluster}}
    ADD COLUMN IF NOT EXISTS FirstSeen SimpleAggregateFunction(min, DateTime64(9)),
    ADD COLUMN IF NOT EXISTS LastSeen SimpleAggregateFunction(max, DateTime64(9));
