-- Cluster only: the Distributed tables over the trace summary and the merged traces have
-- their own column lists, so they get version 16's columns too; the local tables were
-- altered, emptied and the rollup's state removed on every node above.

ALTER TABLE "{{db}}"."chainmap_trace_summary" {{on_cluster}}
    ADD COLUMN IF NOT EXISTS LinkedRootChains
        SimpleAggregateFunction(groupUniqArrayArray, Array(String)),
    ADD COLUMN IF NOT EXISTS EntryChainIds
        SimpleAggregateFunction(groupUniqArrayArray, Array(String));

ALTER TABLE "{{db}}"."chainmap_trace_merged" {{on_cluster}}
    ADD COLUMN IF NOT EXISTS LinkedRootChains Array(LowCardinality(String)),
    ADD COLUMN IF NOT EXISTS EntryChainIds Array(LowCardinality(String));
