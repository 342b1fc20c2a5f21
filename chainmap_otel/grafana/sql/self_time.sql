-- Where a chain's time goes, as exclusive (self) time: each span of the chain's part of a
-- trace (spans tagged with the chain, i.e. its entry span and descendants; the whole trace
-- when an untagged span of it matches the chain's entry rules, as chainmap's membership
-- and critical path decide) minus the union of its children's intervals clipped to it; CONSUMER children of a
-- PRODUCER do not count (the producer does not wait for them), as in jaeger-ui's critical
-- path. Without concurrent children this is exactly the critical-path share; with concurrent
-- children each branch keeps its own time (see docs/sql.md). {{group}}: the grouping columns;
-- {{span_environment}}: the spans of the dashboard's environment (all when it is '').
SELECT
    {{group}},
    round(self_ns / sum(self_ns) OVER (), 6) AS share,
    round(self_ns / 1e6 / traces, 3) AS mean_ms_per_trace
FROM (
    SELECT {{group}}, sum(self_ns) AS self_ns, any(trace_count) AS traces
    FROM (
        SELECT
            service,
            operation,
            greatest(0, (pe - ps) - arrayFold(
                (acc, iv) -> (acc.1 + greatest(0, iv.2 - greatest(iv.1, acc.2)),
                              greatest(acc.2, iv.2)),
                arrayFilter(iv -> iv.1 < iv.2, arrayMap(k -> (greatest(k.1, ps), least(k.2, pe)),
                    arrayFilter(k -> NOT (pkind = 'producer' AND k.3 = 'consumer'), kids))),
                (toInt64(0), toInt64(-9223372036854775807))).1) AS self_ns,
            uniqExact(TraceId) OVER () AS trace_count
        FROM (
            SELECT
                TraceId,
                role.1 AS key,
                anyIf(service, role.2 = 1) AS service,
                anyIf(operation, role.2 = 1) AS operation,
                anyIf(kind, role.2 = 1) AS pkind,
                maxIf(s, role.2 = 1) AS ps,
                maxIf(e, role.2 = 1) AS pe,
                countIf(role.2 = 1) AS parents,
                arraySort(groupArrayIf((s, e, kind), role.2 = 2)) AS kids
            FROM (
                SELECT
                    TraceId,
                    SpanId,
                    ParentSpanId,
                    toString(ServiceName) AS service,
                    toString(SpanName) AS operation,
                    lower(replaceOne(toString(SpanKind), 'SPAN_KIND_', '')) AS kind,
                    toUnixTimestamp64Nano(Timestamp) AS s,
                    s + toInt64(Duration) AS e
                FROM {{db}}.otel_traces
                WHERE $__timeFilter(Timestamp) AND TraceId != '' AND {{span_environment}}
                  AND (has(splitByChar(',', SpanAttributes['chain.ids']), ${chain:sqlstring})
                       OR (SpanAttributes['chain.ids'] = '' AND TraceId IN (
                           SELECT TraceId FROM {{db}}.otel_traces
                           WHERE $__timeFilter(Timestamp) AND SpanAttributes['chain.ids'] = ''
                             AND has({{classify}}, ${chain:sqlstring}))))
            )
            ARRAY JOIN [(SpanId, 1), (ParentSpanId, 2)] AS role
            GROUP BY TraceId, key
            HAVING parents > 0
        )
    )
    GROUP BY {{group}}
)
ORDER BY share DESC, {{group}}
