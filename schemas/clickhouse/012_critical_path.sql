-- chainmap's critical paths: per trace, every part a chain can own and where its time goes on
-- Jaeger's critical path, so the per-chain aggregate (analysis.critical_path) reads one row
-- per trace instead of grouping every span of its window by trace and walking the sampled
-- traces again. Written only by the rollup job chainmap_otel.analysis.rollups.critical_paths
-- (rollup state `critical_paths`), once per trace whose first span starts in a closed slice.
-- A part is the whole trace (EntryChain '') or the subtree of a span that marks a chain's
-- entry (chain.entry_ids; EntryChain = that chain). Which chains a trace belongs to depends on
-- the rules at query time, so the whole-trace row (written when a chain can own the whole trace) keeps what they read: the tagged chains
-- (Chains), the chains with a part of their own (EntryChains) and the rule fields of the
-- untagged spans, root included (UntaggedFields: ServiceName, SpanName, Route, Path, Method,
-- SpanKind). Per part: its latency (the entry span's duration, or the trace's extent) and per
-- operation on its critical path (Services[i], Names[i]) the self time there (SelfNs[i]).
-- Plain MergeTree: a slice interrupted by a crash is deleted and redone.

CREATE TABLE IF NOT EXISTS "{{db}}"."chainmap_critical_path{{local}}" {{on_cluster}} (
    Start DateTime64(9) CODEC(Delta, ZSTD(1)),
    TraceId String CODEC(ZSTD(1)),
    EntryChain LowCardinality(String) CODEC(ZSTD(1)),
    LatencyNs UInt64 CODEC(ZSTD(1)),
    Chains Array(LowCardinality(String)) CODEC(ZSTD(1)),
    EntryChains Array(LowCardinality(String)) CODEC(ZSTD(1)),
    UntaggedFields Array(Tuple(String, String, String, String, String, String)) CODEC(ZSTD(1)),
    Services Array(LowCardinality(String)) CODEC(ZSTD(1)),
    Names Array(LowCardinality(String)) CODEC(ZSTD(1)),
    SelfNs Array(UInt64) CODEC(ZSTD(1))
) ENGINE = {{MergeTree}}
PARTITION BY toDate(Start)
ORDER BY (EntryChain, Start, TraceId)
{{ttl toDateTime(Start)}}
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1;
