-- Environments and sampling.
-- * The edge rollup: each row now belongs to one environment (Environment: the resource's
--   deployment.environment.name, else deployment.environment, of the span that starts the
--   edge: the client or producer span, the root server span for a `user` edge; '' when it
--   has neither) and also sums its calls' sampling weights (EstimatedCalls/EstimatedErrors:
--   OTEP 235 adjusted counts from TraceState's ot=th, 1 per unsampled call, so equal to
--   Calls/Errors for unsampled data). Environment joins the sorting key, so rows of two
--   environments never merge. The rows also hold the span-link edges (producer -> consumer,
--   per minute of the consumer's start), which topology paired live before. The pairing
--   version changed with them (analysis.rollups.edges.PAIRING_VERSION 4), so no row rolled
--   up before is read again: both edge levels are emptied and their states (`edges`,
--   `edges_hour`) removed; the rollup job rebuilds them from the oldest stored span and
--   topology pairs live meanwhile.
-- * A trace's environment is its root span's: chainmap_trace_summary gains RootEnvironment
--   (its view is created anew, so `chainmap schema apply` copies the stored spans into it
--   again) and chainmap_trace_merged keeps it per trace, for trace search's filter.
-- * chainmap_critical_path gains Environment (the trace's root span's), so a chain's
--   critical path in one environment never mixes in another's traces.
-- The merged-trace and critical-path rollups are emptied and their states (`traces`,
-- `critical_paths`) removed: the next refresh rebuilds them from the oldest span.

ALTER TABLE "{{db}}"."chainmap_edge_minute{{local}}" {{on_cluster}}
    ADD COLUMN IF NOT EXISTS Environment LowCardinality(String) AFTER ChainIds,
    ADD COLUMN IF NOT EXISTS EstimatedCalls SimpleAggregateFunction(sum, Float64) CODEC(ZSTD(1)),
    ADD COLUMN IF NOT EXISTS EstimatedErrors SimpleAggregateFunction(sum, Float64) CODEC(ZSTD(1)),
    MODIFY ORDER BY (Catalog, Minute, Source, Target, ConnectionType, TargetType, ChainIds,
                     Environment);

ALTER TABLE "{{db}}"."chainmap_edge_hour{{local}}" {{on_cluster}}
    ADD COLUMN IF NOT EXISTS Environment LowCardinality(String) AFTER ChainIds,
    ADD COLUMN IF NOT EXISTS EstimatedCalls SimpleAggregateFunction(sum, Float64) CODEC(ZSTD(1)),
    ADD COLUMN IF NOT EXISTS EstimatedErrors SimpleAggregateFunction(sum, Float64) CODEC(ZSTD(1)),
    MODIFY ORDER BY (Catalog, Hour, Source, Target, ConnectionType, TargetType, ChainIds,
                     Environment);

TRUNCATE TABLE IF EXISTS "{{db}}"."chainmap_edge_minute{{local}}" {{on_cluster}};

TRUNCATE TABLE IF EXISTS "{{db}}"."chainmap_edge_hour{{local}}" {{on_cluster}};

ALTER TABLE "{{db}}"."chainmap_rollup_state{{local}}" {{on_cluster}}
    DELETE WHERE Rollup IN ('edges', 'edges_hour')
    SETTINGS mutations_sync = 2;

DROP VIEW IF EXISTS "{{db}}"."chainmap_trace_summary_mv{{local}}" {{on_cluster}};

TRUNCATE TABLE IF EXISTS "{{db}}"."chainmap_trace_summary{{local}}" {{on_cluster}};

ALTER TABLE "{{db}}"."chainmap_trace_summary{{local}}" {{on_cluster}}
    ADD COLUMN IF NOT EXISTS RootEnvironment SimpleAggregateFunction(max, String) CODEC(ZSTD(1));

TRUNCATE TABLE IF EXISTS "{{db}}"."chainmap_trace_merged{{local}}" {{on_cluster}};

ALTER TABLE "{{db}}"."chainmap_trace_merged{{local}}" {{on_cluster}}
    ADD COLUMN IF NOT EXISTS RootEnvironment LowCardinality(String) CODEC(ZSTD(1));

TRUNCATE TABLE IF EXISTS "{{db}}"."chainmap_critical_path{{local}}" {{on_cluster}};

ALTER TABLE "{{db}}"."chainmap_critical_path{{local}}" {{on_cluster}}
    ADD COLUMN IF NOT EXISTS Environment LowCardinality(String) CODEC(ZSTD(1));

ALTER TABLE "{{db}}"."chainmap_rollup_state{{local}}" {{on_cluster}}
    DELETE WHERE Rollup IN ('traces', 'critical_paths')
    SETTINGS mutations_sync = 2;

CREATE MATERIALIZED VIEW IF NOT EXISTS "{{db}}"."chainmap_trace_summary_mv{{local}}" {{on_cluster}}
TO "{{db}}"."chainmap_trace_summary{{local}}"
AS SELECT
    TraceId,
    min(Timestamp) AS Start,
    max(Timestamp + toIntervalNanosecond(Duration)) AS End,
    max(if(ParentSpanId = '', toString(ServiceName), '')) AS RootService,
    max(if(ParentSpanId = '', toString(SpanName), '')) AS RootName,
    max(if(ParentSpanId = '', {{route_sql}}, '')) AS RootRoute,
    max(if(ParentSpanId = '', {{path_sql}}, '')) AS RootPath,
    max(if(ParentSpanId = '', {{method_sql}}, '')) AS RootMethod,
    max(if(ParentSpanId = '', Kind, '')) AS RootKind,
    max(if(ParentSpanId = '', transform(toString(StatusCode),
        ['STATUS_CODE_UNSET', 'STATUS_CODE_OK', 'STATUS_CODE_ERROR'],
        ['Unset', 'Ok', 'Error'],
        toString(StatusCode)), '')) AS RootStatus,
    max(if(ParentSpanId = '', Duration, 0)) AS RootDuration,
    groupUniqArrayArray(arrayFilter(x -> x != '',
        splitByChar(',', SpanAttributes['chain.ids']))) AS ChainIds,
    groupUniqArray(toString(ServiceName)) AS Services,
    count() AS SpanCount,
    countIf(StatusCode IN ('Error', 'STATUS_CODE_ERROR')) AS ErrorCount,
    groupUniqArrayIf((toString(ServiceName), toString(SpanName), {{route_sql}}, {{path_sql}},
        {{method_sql}}, Kind), ParentSpanId != '' AND SpanAttributes['chain.ids'] = '')
        AS UntaggedFields,
    max(if(ParentSpanId = '', {{environment_sql}}, '')) AS RootEnvironment
FROM (
    SELECT *, transform(toString(SpanKind),
        ['SPAN_KIND_UNSPECIFIED', 'SPAN_KIND_INTERNAL', 'SPAN_KIND_SERVER', 'SPAN_KIND_CLIENT',
         'SPAN_KIND_PRODUCER', 'SPAN_KIND_CONSUMER'],
        ['Unspecified', 'Internal', 'Server', 'Client', 'Producer', 'Consumer'],
        toString(SpanKind)) AS Kind
    FROM {{source}}
)
WHERE TraceId != ''
GROUP BY TraceId;
