-- Service-graph edges per chain, servicegraph-connector semantics, in one pass over otel_traces.
-- Pairing without a JOIN: every span gets a pair key inside its trace. A CLIENT/PRODUCER span
-- keys on its own SpanId, a SERVER/CONSUMER span on its ParentSpanId, so a client and the
-- server spans it caused land in one (TraceId, key) group; a root SERVER span gets its own
-- group (the `user` edge). Level 1 turns each group into 0..n edges, level 2 collects a
-- trace's edges and chains (trace-level membership), level 3 aggregates per chain and edge.
-- Bound: {start_ns:Int64} {end_ns:Int64} {wanted:Array(String)} ('' = all traffic), plus the
-- membership classifier's parameters. {{db}}, {{classify}} are substituted by the caller
-- (a validated identifier and compiled SQL whose patterns are themselves parameters).
SELECT
    chain,
    edge.1 AS source,
    edge.2 AS target,
    edge.3 AS connection_type,
    edge.6 AS target_type,
    count() AS calls,
    countIf(edge.4) AS errors,
    quantilesExact(0.5, 0.95, 0.99)(edge.5) AS latency_ns,
    min(start_ns) AS first_seen_ns,
    max(start_ns) AS last_seen_ns
FROM (
    SELECT
        TraceId,
        groupArrayArray(group_edges) AS edges,
        groupUniqArrayArray(group_chains) AS trace_chains,
        min(group_start) AS start_ns
    FROM (
        SELECT
            TraceId,
            countIf(role = 1) > 0 AS has_client,
            anyIf(service, role = 1) AS c_service,
            anyIf(kind, role = 1) AS c_kind,
            maxIf(failed, role = 1) AS c_failed,
            maxIf(Duration, role = 1) AS c_duration,
            anyIf(db_node, role = 1) AS c_db,
            anyIf(virtual_node, role = 1) AS c_virtual,
            groupArrayIf((service, failed, Duration), role IN (2, 3)) AS servers,
            max(role = 3) AS is_root,
            groupUniqArrayArray(chains) AS group_chains,
            min(start) AS group_start,
            multiIf(
                is_root,
                arrayMap(s -> ('user', s.1, 'virtual_node', s.2, s.3, 'service'), servers),
                has_client AND notEmpty(servers),
                arrayMap(s -> (c_service, s.1,
                               if(c_kind = 'producer', 'messaging_system', ''),
                               c_failed OR s.2, c_duration, 'service'), servers),
                has_client AND c_db != '',
                [(c_service, c_db, 'database', c_failed, c_duration, 'database')],
                has_client AND c_kind = 'producer',
                [(c_service, c_virtual, 'messaging_system', c_failed, c_duration, 'messaging')],
                has_client,
                [(c_service, c_virtual, 'virtual_node', c_failed, c_duration, 'virtual')],
                CAST([], 'Array(Tuple(String, String, String, UInt8, UInt64, String))')
            ) AS group_edges
        FROM (
            SELECT
                TraceId,
                toString(ServiceName) AS service,
                lower(replaceOne(toString(SpanKind), 'SPAN_KIND_', '')) AS kind,
                toUInt8(StatusCode IN ('Error', 'STATUS_CODE_ERROR')) AS failed,
                Duration,
                toUnixTimestamp64Nano(Timestamp) AS start,
                multiIf(
                    kind IN ('client', 'producer'), 1,
                    kind IN ('server', 'consumer') AND ParentSpanId != '', 2,
                    kind = 'server', 3,
                    0) AS role,
                multiIf(role = 1, SpanId, role = 2, ParentSpanId, concat('~', SpanId)) AS pair_key,
                if(role = 1 AND (SpanAttributes['db.system'] != ''
                                 OR SpanAttributes['db.system.name'] != ''
                                 OR SpanAttributes['db.namespace'] != ''
                                 OR SpanAttributes['db.name'] != ''),
                   multiIf(SpanAttributes['peer.service'] != '', SpanAttributes['peer.service'],
                           SpanAttributes['db.system'] != '', SpanAttributes['db.system'],
                           SpanAttributes['db.system.name'] != '', SpanAttributes['db.system.name'],
                           SpanAttributes['db.namespace'] != '', SpanAttributes['db.namespace'],
                           SpanAttributes['db.name']),
                   '') AS db_node,
                if(role = 1,
                   multiIf(SpanAttributes['peer.service'] != '', SpanAttributes['peer.service'],
                           SpanAttributes['server.address'] != '', SpanAttributes['server.address'],
                           SpanAttributes['net.peer.name'] != '', SpanAttributes['net.peer.name'],
                           kind = 'producer' AND SpanAttributes['messaging.system'] != '',
                           SpanAttributes['messaging.system'],
                           SpanAttributes['db.name'] != '', SpanAttributes['db.name'],
                           'unknown'),
                   '') AS virtual_node,
                if(SpanAttributes['chain.ids'] != '',
                   arrayFilter(x -> x != '', splitByChar(',', SpanAttributes['chain.ids'])),
                   {{classify}}) AS chains
            FROM {{db}}.otel_traces
            WHERE Timestamp >= fromUnixTimestamp64Nano({start_ns:Int64})
              AND Timestamp < fromUnixTimestamp64Nano({end_ns:Int64})
              AND TraceId != ''
        )
        GROUP BY TraceId, pair_key
    )
    GROUP BY TraceId
)
ARRAY JOIN edges AS edge
ARRAY JOIN arrayFilter(c -> has({wanted:Array(String)}, c), arrayPushFront(trace_chains, '')) AS chain
GROUP BY chain, source, target, connection_type, target_type
ORDER BY chain, source, target, connection_type
