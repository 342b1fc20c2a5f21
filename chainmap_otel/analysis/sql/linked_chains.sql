-- The chains held above a span through its span links (the membership rule across traces,
-- analysis.membership): per span of {{span_window}} that may hold chains this way
-- ({{link_heir}}: it carries no chain.ids, or it marks an entry of its own, so no chain came
-- with the message) and links to a span of another trace, the chains that linked span belongs to in its own trace:
-- its chain.ids plus the own chains of its ancestors when tagged, else the chains its entry
-- rules match plus its ancestors' own chains ({{member_chains}}, member_chains.sql, the one
-- definition link_edges.sql uses for an untagged producer too). The linking span holds
-- them above itself: its subtree belongs to them, and they are no entry of its own.
-- One hop: a linked span's own links are not followed, so an untagged service consuming from
-- an untagged consumer of X is not in X (a service tagging in between carries X on).
-- A linked span pairs as in link_edges.sql: starting at most {link_lookback:Int64} ns before
-- or after the linking span, a rule of the link alone; its trace is read as member_chains.sql
-- says, from the linking spans' earliest and latest start (`members`).
-- Cost: only spans with links that {{link_heir}} admits are looked at; `Links.TraceId.size0` (the arrays'
-- lengths) skips the others before any link is read (see instance_links.sql). A window
-- without such linking spans reads no linked trace.
-- Columns: linked_trace, linked_span (the linking span), linked_chains.
WITH linking AS (
    SELECT
        TraceId AS c_trace,
        SpanId AS c_span,
        toInt64(toUnixTimestamp64Nano(Timestamp)) AS c_start,
        link.1 AS p_trace_id,
        link.2 AS p_span_id
    FROM {{db}}.otel_traces
    ARRAY JOIN arrayZip(`Links.TraceId`, `Links.SpanId`) AS link
    WHERE `Links.TraceId.size0` > 0
      AND ({{span_window}})
      AND TraceId != ''
      AND {{link_heir}}
      AND link.1 != TraceId
),
-- What the linked traces' read needs, in one pass over the linking spans: their earliest
-- and latest start, and the linked trace ids.
(SELECT (min(c_start), max(c_start), groupUniqArray(p_trace_id)) FROM linking) AS members
SELECT
    c_trace AS linked_trace,
    c_span AS linked_span,
    groupUniqArrayArray(p_chains) AS linked_chains
FROM linking AS c
INNER JOIN (
    {{member_chains}}
) AS p ON p.p_trace = c.p_trace_id AND p.p_span = c.p_span_id
WHERE p_start >= c_start - {link_lookback:Int64} AND p_start < c_start + {link_lookback:Int64}
GROUP BY c_trace, c_span
