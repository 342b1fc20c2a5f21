-- Cluster only: Distributed tables over each shard's aggregates. Rows of one trace live on
-- one shard (otel_traces is sharded by cityHash64(TraceId)), so chainmap_trace_summary
-- needs no cross-shard merge; chain minutes merge across shards in the reader's GROUP BY.

CREATE TABLE IF NOT EXISTS "{{db}}"."chainmap_trace_summary" {{on_cluster}}
AS "{{db}}"."chainmap_trace_summary_local"
ENGINE = Distributed('{{cluster}}', '{{db}}', 'chainmap_trace_summary_local', cityHash64(TraceId));

CREATE TABLE IF NOT EXISTS "{{db}}"."chainmap_chain_minute" {{on_cluster}}
AS "{{db}}"."chainmap_chain_minute_local"
ENGINE = Distributed('{{cluster}}', '{{db}}', 'chainmap_chain_minute_local', rand());
