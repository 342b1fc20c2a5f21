-- Linked roots in trace search. A chain instance crossing a queue spans several traces: the
-- producer's (holding the chain's entry) and the consumers' (a root span with span links to
-- the producer's span, carrying the producer's chain stack through the message's baggage).
-- Health counts such an instance once (version 11); trace search now lists it once too, so
-- the per-trace tables learn which chains a trace holds through a linked root:
-- * LinkedRootChains: the chain.ids of the trace's root span when that span has span links;
-- * EntryChainIds: the chains some span of the trace enters (chain.entry_ids of the spans
--   marked chain.entry).
-- A chain in LinkedRootChains and not in EntryChainIds is the producer's: a chain search does
-- not find the trace by it. chainmap_trace_summary gains both (its view is created anew, so
-- `chainmap schema apply` copies the stored spans into it again) and chainmap_trace_merged
-- keeps them per trace; the merged-trace rollup is emptied and its state (`traces`) removed:
-- the next refresh rebuilds it from the oldest span.

DROP VIEW IF EXISTS "{{db}}"."chainmap_trace_summary_mv{{local}}" {{on_cluster}};

TRUNCATE TABLE IF EXISTS "{{db}}"."chainmap_trace_summary{{local}}" {{on_cluster}};

ALTER TABLE "{{db}}"."chainmap_trace_summary{{local}}" {{on_cluster}}
    ADD COLUMN IF NOT EXISTS LinkedRootChains
        SimpleAggregateFunction(groupUniqArrayArray, Array(String)) CODEC(ZSTD(1)),
    ADD COLUMN IF NOT EXISTS EntryChainIds
        SimpleAggregateFunction(groupUniqArrayArray, Array(String)) CODEC(ZSTD(1));

TRUNCATE TABLE IF EXISTS "{{db}}"."chainmap_trace_merged{{local}}" {{on_cluster}};

ALTER TABLE "{{db}}"."chainmap_trace_merged{{local}}" {{on_cluster}}
    ADD COLUMN IF NOT EXISTS LinkedRootChains Array(LowCardinality(String)) CODEC(ZSTD(1)),
    ADD COLUMN IF NOT EXISTS EntryChainIds Array(LowCardinality(String)) CODEC(ZSTD(1));

ALTER TABLE "{{db}}"."chainmap_rollup_state{{local}}" {{on_cluster}}
    DELETE WHERE Rollup = 'traces'
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
    max(if(ParentSpanId = '', {{environment_sql}}, '')) AS RootEnvironment,
    groupUniqArrayArray(if(ParentSpanId = '' AND notEmpty(`Links.SpanId`),
        arrayFilter(x -> x != '', splitByChar(',', SpanAttributes['chain.ids'])),
        CAST([], 'Array(String)'))) AS LinkedRootChains,
    groupUniqArrayArray(if(lower(SpanAttributes['chain.entry']) = 'true',
        arrayFilter(x -> x != '', splitByChar(',', SpanAttributes['chain.entry_ids'])),
        CAST([], 'Array(String)'))) AS EntryChainIds
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
