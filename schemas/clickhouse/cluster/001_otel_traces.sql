-- Cluster only: the names readers and writers use are Distributed tables over the
-- replicated *_local tables, sharded by trace so every per-trace join stays on one shard.
-- Point the Collector at "otel_traces" with create_schema: false.

CREATE TABLE IF NOT EXISTS "{{db}}"."otel_traces" {{on_cluster}}
AS "{{db}}"."otel_traces_local"
ENGINE = Distributed('{{cluster}}', '{{db}}', 'otel_traces_local', cityHash64(TraceId));

CREATE TABLE IF NOT EXISTS "{{db}}"."otel_traces_trace_id_ts" {{on_cluster}}
AS "{{db}}"."otel_traces_trace_id_ts_local"
ENGINE = Distributed('{{cluster}}', '{{db}}', 'otel_traces_trace_id_ts_local', cityHash64(TraceId));
