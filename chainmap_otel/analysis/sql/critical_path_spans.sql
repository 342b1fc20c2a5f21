-- The span columns the critical-path SQL reads (critical_path_traces.sql,
-- critical_path_rank.sql): spans starting from {reach_ns:Int64} before {from_ns:Int64} up
-- to {read_to_ns:Int64}, narrowed by {{traces}}.
SELECT
    TraceId,
    SpanId,
    ParentSpanId,
    toString(ServiceName) AS service,
    toString(SpanName) AS name,
    lower(replaceOne(toString(SpanKind), 'SPAN_KIND_', '')) AS kind,
    toUnixTimestamp64Nano(Timestamp) AS start_ns,
    Duration,
    SpanAttributes['chain.entry_ids'] AS entry_ids,
    arrayFilter(x -> x != '', splitByChar(',', entry_ids)) AS entries,
    arrayFilter(x -> x != '', splitByChar(',', SpanAttributes['chain.ids'])) AS chains,
    toUInt8(SpanAttributes['chain.ids'] != '') AS tagged,
    toUInt8(ParentSpanId = '' AND length(Links.TraceId) > 0) AS linked_root,
    if(ParentSpanId = '', {{environment_sql}}, '') AS root_environment,
    (service, name, {{route_sql}}, {{path_sql}}, {{method_sql}},
     transform(toString(SpanKind),
        ['SPAN_KIND_UNSPECIFIED', 'SPAN_KIND_INTERNAL', 'SPAN_KIND_SERVER', 'SPAN_KIND_CLIENT',
         'SPAN_KIND_PRODUCER', 'SPAN_KIND_CONSUMER'],
        ['Unspecified', 'Internal', 'Server', 'Client', 'Producer', 'Consumer'],
        toString(SpanKind))) AS fields
FROM {{db}}.otel_traces
WHERE Timestamp >= fromUnixTimestamp64Nano({from_ns:Int64} - {reach_ns:Int64})
  AND Timestamp < fromUnixTimestamp64Nano({read_to_ns:Int64})
  AND TraceId != '' {{traces}}
