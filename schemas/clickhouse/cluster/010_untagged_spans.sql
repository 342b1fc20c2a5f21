-- Cluster only: the Distributed tables over the aggregates version 10 gave new columns (a
-- Distributed table does not follow its local table's ALTERs).

ALTER TABLE "{{db}}"."chainmap_trace_summary" {{on_cluster}}
    ADD COLUMN IF NOT EXISTS UntaggedFields SimpleAggregateFunction(groupUniqArrayArray,
        Array(Tuple(String, String, String, String, String, String)));

ALTER TABLE "{{db}}"."chainmap_inferred_entry_minute" {{on_cluster}}
    ADD COLUMN IF NOT EXISTS AboveChains Array(LowCardinality(String)),
    ADD COLUMN IF NOT EXISTS AboveFields Array(Tuple(String, String, String, String, String, String));

ALTER TABLE "{{db}}"."chainmap_trace_merged" {{on_cluster}}
    ADD COLUMN IF NOT EXISTS UntaggedFields Array(Tuple(String, String, String, String, String, String));
