-- Cluster only: the Distributed tables over the aggregates version 9 created anew (a
-- Distributed table copies its local table's columns when it is created).

DROP TABLE IF EXISTS "{{db}}"."chainmap_trace_summary" {{on_cluster}};

CREATE TABLE IF NOT EXISTS "{{db}}"."chainmap_trace_summary" {{on_cluster}}
AS "{{db}}"."chainmap_trace_summary_local"
ENGINE = Distributed('{{cluster}}', '{{db}}', 'chainmap_trace_summary_local', cityHash64(TraceId));

DROP TABLE IF EXISTS "{{db}}"."chainmap_chain_minute" {{on_cluster}};

CREATE TABLE IF NOT EXISTS "{{db}}"."chainmap_chain_minute" {{on_cluster}}
AS "{{db}}"."chainmap_chain_minute_local"
ENGINE = Distributed('{{cluster}}', '{{db}}', 'chainmap_chain_minute_local', rand());

DROP TABLE IF EXISTS "{{db}}"."chainmap_inferred_entry_minute" {{on_cluster}};

CREATE TABLE IF NOT EXISTS "{{db}}"."chainmap_inferred_entry_minute" {{on_cluster}}
AS "{{db}}"."chainmap_inferred_entry_minute_local"
ENGINE = Distributed('{{cluster}}', '{{db}}', 'chainmap_inferred_entry_minute_local', rand());

DROP TABLE IF EXISTS "{{db}}"."chainmap_trace_merged" {{on_cluster}};

CREATE TABLE IF NOT EXISTS "{{db}}"."chainmap_trace_merged" {{on_cluster}}
AS "{{db}}"."chainmap_trace_merged_local"
ENGINE = Distributed('{{cluster}}', '{{db}}', 'chainmap_trace_merged_local', cityHash64(TraceId));
