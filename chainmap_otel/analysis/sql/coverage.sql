-- How each chain instance in [{start_ns:Int64}, {end_ns:Int64}) was recognised, where the
-- tags and the current rules disagree, and the root endpoints no chain covers (read by
-- analysis.coverage). The aggregates do not keep chain.tagged_by, so this reads span rows:
-- the traces with a span in the window, their spans from {reach_ns:Int64} ns before it
-- ({{span_window}}, analysis.coverage.SPANS_READ), each with the chains it holds through its
-- span links (linked_spans.sql; {link_lookback:Int64} bound).
-- Per span: its tag (chain.ids) and tagger (chain.tagged_by = 'collector' for the
-- Collector's OTTL, else the source's processor), the chains the current rules match on it
-- ({{classify}}, analysis.membership over the span row), its own chains (the tag, else the
-- rules: the membership rule) and, by pointer jumping (8 rounds: 256 levels, as
-- inferred_entries.sql), the own chains of all its ancestors. One row per fact and its
-- fields, counted, for the spans starting in the window. Exact counts:
-- * entry: a chain of the span's own chains no ancestor holds (the chain's entry, one per
--   instance), by tagger ('query_time' for an untagged span) and service; a root span with
--   span links counts the chains of its tag it does not enter itself (chain.entry_ids) as
--   held above it: they came from the linked producer, whose instance it continues; an
--   untagged span with span links holds the chains of the spans it links to above it
--   (linked_chains.sql: their tag, else their rules and their ancestors', one hop);
-- * tag_not_rules_total: a tagged span enters a chain its rules do not match (nor
--   chain.push, the track helpers' explicit push); rules_not_tag_total: the rules match a
--   chain on a tagged span that neither its tag nor an ancestor holds; by tagger;
-- * tagger: tagged spans, by tagger and service (which services tag);
-- * uncovered: the traces no span of which belongs to any chain (held through a link or not).
-- Details, the {row_cap:UInt32} rows with the most of each kind: tag_not_rules and
-- rules_not_tag with the span's route, method, tag and rules; query_time, the untagged
-- entries with theirs, of the services the source tags (source_service: they disagree with
-- the rules); unmatched, the root spans of the uncovered traces by service, route, method
-- and kind.
SELECT kind, chain, tagged_by, service, route, method, span_kind, tag, rules, n
FROM (
SELECT *, row_number() OVER (PARTITION BY kind ORDER BY n DESC, service, route, method, chain)
           AS rank
FROM (
SELECT fact.1 AS kind, fact.2 AS chain, fact.3 AS tagged_by, fact.4 AS service,
       fact.5 AS route, fact.6 AS method, fact.7 AS span_kind, fact.8 AS tag, fact.9 AS rules,
       count() AS n,
       max(kind = 'tagger' AND tagged_by = 'source') OVER (PARTITION BY service)
           AS source_service
FROM (
    SELECT
        TraceId,
        groupArray(SpanId) AS ids,
        arrayMap(p -> toUInt32(indexOf(ids, p)), groupArray(ParentSpanId)) AS parent_index,
        groupArray(own) AS owns,
        groupArray((in_window, tagger, tag, rules, pushed, own, service, route, method, kind,
                    ParentSpanId = '')) AS spans,
        groupArray(carried) AS carried_all,
        arrayMap(i -> arrayConcat(if(parent_index[i] > 0, owns[parent_index[i]], []),
                                  carried_all[i]),
                 arrayEnumerate(ids)) AS parents,
        arrayFold((acc, round) -> (
            arrayMap(i -> if(acc.2[i] > 0, arrayDistinct(arrayConcat(acc.1[i], acc.1[acc.2[i]])),
                             acc.1[i]), arrayEnumerate(ids)),
            arrayMap(i -> if(acc.2[i] > 0, acc.2[acc.2[i]], toUInt32(0)), arrayEnumerate(ids))),
            range(8), (parents, parent_index)).1 AS above,
        empty(arrayFlatten(owns)) AND empty(arrayFlatten(carried_all)) AS uncovered
    FROM (
        SELECT
            TraceId,
            SpanId,
            ParentSpanId,
            -- Counted: the spans of the window in its environment ({environment:String},
            -- '' for all): a fact belongs to the environment of its span. Ancestors are
            -- read whatever theirs.
            Timestamp >= fromUnixTimestamp64Nano({start_ns:Int64}) AND {{span_environment}}
                AS in_window,
            SpanAttributes['chain.ids'] != '' AS tagged,
            if(tagged, if(SpanAttributes['chain.tagged_by'] = 'collector', 'collector', 'source'),
               '') AS tagger,
            arrayFilter(x -> x != '', splitByChar(',', SpanAttributes['chain.ids'])) AS tag,
            {{classify}} AS rules,
            arrayFilter(x -> x != '', splitByChar(',', SpanAttributes['chain.push'])) AS pushed,
            if(tagged, tag, rules) AS own,
            -- A linked root (a message's consumer) inherits its tag from the linked producer
            -- through the message's baggage: those chains count as held above it, as
            -- membership through a span link says (schema 11 counts them likewise). An
            -- untagged span with links (a consumer in a service that tags nothing) holds
            -- the chains of the spans it links to (linked_chains.sql) above it likewise.
            if(tagged AND ParentSpanId = '' AND notEmpty(`Links.SpanId`),
               arrayDistinct(arrayConcat(
                   arrayFilter(x -> NOT has(splitByChar(',', SpanAttributes['chain.entry_ids']),
                                            x),
                               tag),
                   linked_chains)),
               linked_chains) AS carried,
            toString(ServiceName) AS service,
            {{route_sql}} AS route,
            {{method_sql}} AS method,
            transform(toString(SpanKind),
                ['SPAN_KIND_UNSPECIFIED', 'SPAN_KIND_INTERNAL', 'SPAN_KIND_SERVER',
                 'SPAN_KIND_CLIENT', 'SPAN_KIND_PRODUCER', 'SPAN_KIND_CONSUMER'],
                ['Unspecified', 'Internal', 'Server', 'Client', 'Producer', 'Consumer'],
                toString(SpanKind)) AS kind
        -- The spans read ({{span_window}}, analysis.coverage.SPANS_READ), with the
        -- chains they hold through span links.
        FROM ({{linked_spans}})
    )
    GROUP BY TraceId
)
ARRAY JOIN spans AS span, above AS ancestors
ARRAY JOIN arrayConcat(
    arrayMap(c -> ('entry', c, if(span.2 = '', 'query_time', span.2), span.7, '', '', '', '', ''),
             arrayFilter(c -> NOT has(ancestors, c), span.6)),
    arrayMap(c -> ('query_time', c, '', span.7, span.8, span.9, '', '',
                   arrayStringConcat(span.4, ',')),
             arrayFilter(c -> span.2 = '' AND NOT has(ancestors, c), span.6)),
    arrayFlatten(arrayMap(c -> [
                   ('tag_not_rules', c, span.2, span.7, span.8, span.9, span.10,
                    arrayStringConcat(span.3, ','), arrayStringConcat(span.4, ',')),
                   ('tag_not_rules_total', c, span.2, '', '', '', '', '', '')],
             arrayFilter(c -> span.2 != '' AND NOT has(ancestors, c) AND NOT has(span.4, c)
                              AND NOT has(span.5, c), span.3))),
    arrayFlatten(arrayMap(c -> [
                   ('rules_not_tag', c, span.2, span.7, span.8, span.9, span.10,
                    arrayStringConcat(span.3, ','), arrayStringConcat(span.4, ',')),
                   ('rules_not_tag_total', c, span.2, '', '', '', '', '', '')],
             arrayFilter(c -> span.2 != '' AND NOT has(ancestors, c) AND NOT has(span.3, c),
                         span.4))),
    if(span.2 != '', [('tagger', '', span.2, span.7, '', '', '', '', '')], []),
    if(uncovered AND span.11,
       [('unmatched', '', '', span.7, span.8, span.9, span.10, '', ''),
        ('uncovered', '', '', '', '', '', '', '', '')], [])) AS fact
WHERE span.1
GROUP BY kind, chain, tagged_by, service, route, method, span_kind, tag, rules
)
WHERE kind != 'query_time' OR source_service
)
WHERE rank <= {row_cap:UInt32}
   OR kind IN ('entry', 'tag_not_rules_total', 'rules_not_tag_total', 'tagger', 'uncovered')
ORDER BY kind, n DESC, service, route, method, chain
