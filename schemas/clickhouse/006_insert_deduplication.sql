-- Insert deduplication on the span table and every table a materialized view writes from
-- it: the ingest write-ahead log and the exporter retry a batch under the same
-- insert_deduplication_token, and ClickHouse keeps the hashes of the last N blocks per
-- table to drop the repeat. Replicated tables deduplicate by default; a plain MergeTree
-- only with non_replicated_deduplication_window > 0. Harmless on a Collector's table.

ALTER TABLE "{{db}}"."otel_traces{{local}}" {{on_cluster}}
    MODIFY SETTING non_replicated_deduplication_window = 1000;

ALTER TABLE "{{db}}"."otel_traces_trace_id_ts{{local}}" {{on_cluster}}
    MODIFY SETTING non_replicated_deduplication_window = 1000;

ALTER TABLE "{{db}}"."chainmap_trace_summary{{local}}" {{on_cluster}}
    MODIFY SETTING non_replicated_deduplication_window = 1000;

ALTER TABLE "{{db}}"."chainmap_chain_minute{{local}}" {{on_cluster}}
    MODIFY SETTING non_replicated_deduplication_window = 1000;
