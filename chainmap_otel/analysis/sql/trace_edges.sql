-- Per trace in the window: its service-graph edges (servicegraph-connector semantics), its
-- chains (trace-level membership) and its root span. Shared by topology.sql and discover.sql.
-- Pairing without a JOIN: every span gets a pair key inside its trace. A CLIENT/PRODUCER span
-- keys on its own SpanId, a SERVER/CONSUMER span on its ParentSpanId, so a client and the
-- server spans it caused land in one (TraceId, key) group; a root SERVER span gets its own
-- group (the `user` edge). The inner level turns each group into 0..n edge tuples
-- (source, target, connection_type, failed, duration_ns, target_type, chains, entry,
-- server_ns, client_ns); duration_ns is the client span's (the server's for `user` edges).
-- Which spans are read and which traces are kept are the fragments span_window and
-- trace_window: by default (analysis.sql.DEFAULT_FRAGMENTS) the spans starting in the bound
-- [start_ns, end_ns) and every trace they form; topology and the edge rollup read a margin
-- around their time slices and keep the traces that START in them (analysis.rollups.edges).
-- Bound: the window's parameters, {link_lookback:Int64} and the membership classifier's
-- parameters; {{db}}, {{classify}}, the node naming {{db_node}}/{{virtual_node}}
-- (analysis.naming) and the span rows {{linked_spans}} are filled in by analysis.sql.load_sql.
-- Chain scope (the membership rule, analysis.membership): a span belongs to the chains of
-- every ancestor-or-self, each contributing its own chains: a tagged span its chain.ids (its
-- stack), an untagged span the chains its row matches ({{classify}}). They are propagated down
-- each trace by pointer jumping (each of 8 rounds doubles the reach, so 256 levels), through
-- tagged spans too: a chain entered at an untagged span (matched at query time) never entered
-- the baggage, so the stacks below it lack it. A trace whose spans are all tagged and hold
-- no chain through a link needs no walk (each stack already holds its ancestors').
-- Across traces: an untagged span (or one marking an entry of its own: {{link_heir}}) with
-- span links to spans of another trace (a message's
-- consumer in a service that tags nothing) also holds the chains of the spans it links to
-- (linked_spans.sql, linked_chains.sql: one hop, the linked span starting at most
-- {link_lookback:Int64} ns before or after it), so its subtree's edges count for the chain
-- whose instance it continues.
-- Each edge tuple carries the chains it counts for (7th element) and whether it is the
-- entry edge of those chains (8th): a server span whose chain its client does not carry is
-- that chain's entry, and its client is shown as the node 'caller:<service>' for that chain
-- only (all traffic keeps the plain edge).
-- server_ns and client_ns (9th, 10th) are the servicegraph connector's ServerLatencySec and
-- ClientLatencySec in ns: a paired edge (and its 'caller:' edge) the server and the client
-- span's durations; a database edge the client span's for both; a `user` edge the server
-- span's and 0 (the connector never sets a client latency there); a virtual or messaging
-- node without a server/consumer 0 and the client span's.
-- weight and environment (11th, 12th) belong to the span that starts the edge: the client or
-- producer span (the root server span for a `user` edge). weight is its sampling adjusted
-- count (OTEP 235 ot=th in TraceState, 1 when unsampled: tagging.sampling), environment its
-- resource's deployment.environment.name, else deployment.environment (tagging.fields).
SELECT
    TraceId,
    groupArrayArray(group_edges) AS edges,
    groupUniqArrayArray(group_chains) AS trace_chains,
    min(group_start) AS start_ns,
    anyIf(g_root_service, g_roots > 0) AS root_service,
    anyIf(g_root_kind, g_roots > 0) AS root_kind,
    anyIf(g_root_route, g_roots > 0) AS root_route,
    anyIf(g_root_name, g_roots > 0) AS root_name,
    maxIf(g_root_duration, g_roots > 0) AS root_duration,
    maxIf(g_root_failed, g_roots > 0) AS root_failed
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
        anyIf(chains, role = 1) AS c_chains,
        anyIf(weight, role = 1) AS c_weight,
        anyIf(environment, role = 1) AS c_environment,
        groupArrayIf((service, failed, Duration, chains, weight, environment), role IN (2, 3))
            AS servers,
        max(role = 3) AS is_root,
        groupUniqArrayArray(chains) AS group_chains,
        min(start) AS group_start,
        countIf(ParentSpanId = '') AS g_roots,
        anyIf(service, ParentSpanId = '') AS g_root_service,
        anyIf(kind, ParentSpanId = '') AS g_root_kind,
        anyIf(root_route, ParentSpanId = '') AS g_root_route,
        anyIf(name, ParentSpanId = '') AS g_root_name,
        maxIf(Duration, ParentSpanId = '') AS g_root_duration,
        maxIf(failed, ParentSpanId = '') AS g_root_failed,
        multiIf(
            is_root,
            arrayMap(s -> ('user', s.1, 'virtual_node', s.2, s.3, 'service', s.4, toUInt8(0),
                           s.3, toUInt64(0), s.5, s.6),
                     servers),
            has_client AND notEmpty(servers),
            arrayFlatten(arrayMap(s -> arrayConcat(
                [(c_service, s.1, if(c_kind = 'producer', 'messaging_system', ''),
                  c_failed OR s.2, c_duration, 'service', c_chains, toUInt8(0), s.3,
                  c_duration, c_weight, c_environment)],
                if(arrayExists(x -> NOT has(c_chains, x), s.4),
                   [(concat('caller:', c_service), s.1,
                     if(c_kind = 'producer', 'messaging_system', ''),
                     c_failed OR s.2, c_duration, 'service',
                     arrayFilter(x -> NOT has(c_chains, x), s.4), toUInt8(1), s.3,
                     c_duration, c_weight, c_environment)],
                   CAST([], 'Array(Tuple(String, String, String, UInt8, UInt64, String, Array(String), UInt8, UInt64, UInt64, Float64, String))'))),
                servers)),
            has_client AND c_db != '',
            [(c_service, c_db, 'database', c_failed, c_duration, 'database', c_chains, toUInt8(0),
              c_duration, c_duration, c_weight, c_environment)],
            has_client AND c_kind = 'producer',
            [(c_service, c_virtual, 'messaging_system', c_failed, c_duration, 'messaging',
              c_chains, toUInt8(0), toUInt64(0), c_duration, c_weight, c_environment)],
            has_client,
            [(c_service, c_virtual, 'virtual_node', c_failed, c_duration, 'virtual', c_chains,
              toUInt8(0), toUInt64(0), c_duration, c_weight, c_environment)],
            CAST([], 'Array(Tuple(String, String, String, UInt8, UInt64, String, Array(String), UInt8, UInt64, UInt64, Float64, String))')
        ) AS group_edges
    FROM (
        -- Back to one row per span, with the chains of its subtree.
        SELECT
            TraceId,
            span.1 AS service,
            span.2 AS name,
            span.3 AS kind,
            span.4 AS failed,
            span.5 AS Duration,
            span.6 AS start,
            span.7 AS ParentSpanId,
            span.8 AS root_route,
            span.9 AS role,
            span.10 AS pair_key,
            span.11 AS db_node,
            span.12 AS virtual_node,
            span.13 AS weight,
            span.14 AS environment,
            span_chains AS chains
        FROM (
            SELECT
                TraceId,
                groupArray((service, name, kind, failed, Duration, start, ParentSpanId,
                            root_route, role, pair_key, db_node, virtual_node, weight,
                            environment)) AS spans,
                groupArray(SpanId) AS ids,
                groupArray(ParentSpanId) AS parent_ids,
                groupArray(if(empty(linked_chains), own_chains,
                              arrayDistinct(arrayConcat(own_chains, linked_chains)))) AS own,
                groupArray(tagged) AS tagged_spans,
                groupArray(notEmpty(linked_chains)) AS via_links,
                if((has(tagged_spans, 0) OR has(via_links, 1))
                   AND arrayExists(c -> notEmpty(c), own),
                   {{chains_down}},
                   own) AS chain_sets
            FROM (
        SELECT
            TraceId,
            SpanId,
            toString(ServiceName) AS service,
            toString(SpanName) AS name,
            lower(replaceOne(toString(SpanKind), 'SPAN_KIND_', '')) AS kind,
            toUInt8(StatusCode IN ('Error', 'STATUS_CODE_ERROR')) AS failed,
            Duration,
            toUnixTimestamp64Nano(Timestamp) AS start,
            ParentSpanId,
            if(ParentSpanId = '', {{route_sql}}, '') AS root_route,
            multiIf(
                kind IN ('client', 'producer'), 1,
                kind IN ('server', 'consumer') AND ParentSpanId != '', 2,
                kind = 'server', 3,
                0) AS role,
            multiIf(role = 1, SpanId, role = 2, ParentSpanId, concat('~', SpanId)) AS pair_key,
            {{db_node}} AS db_node,
            {{virtual_node}} AS virtual_node,
            -- Most spans carry no tracestate: skip the threshold's parsing for them.
            if(TraceState = '', 1., toFloat64({{weight_sql}})) AS weight,
            toString({{environment_sql}}) AS environment,
            toUInt8(SpanAttributes['chain.ids'] != '') AS tagged,
            linked_chains,
            if(tagged,
               arrayFilter(x -> x != '', splitByChar(',', SpanAttributes['chain.ids'])),
               {{classify}}) AS own_chains
        FROM (
            -- Filtered in a subquery of its own: the expressions above are then computed
            -- for the window's spans only, not for every row of the granules read.
            {{linked_spans}}
        )
            )
            GROUP BY TraceId
        )
        ARRAY JOIN spans AS span, chain_sets AS span_chains
    )
    GROUP BY TraceId, pair_key
)
GROUP BY TraceId
HAVING {{trace_window}}
