"""The write path: decode -> validate -> log -> queue -> insert.

OTLP payloads are decoded (:mod:`.decode`, :mod:`.decode_json`) and validated span by span
(:mod:`.validate`) into Arrow tables; serve's writer (:mod:`.writer`) logs them in the
write-ahead log (:mod:`.wal`), queues them and hands them to the inserter
(:mod:`.inserter`). The SDK exporter (:mod:`.exporter`, SDK spans via :mod:`.sdk_spans`)
and ``chainmap ingest`` (:mod:`.files`) insert through the same inserter or store call.
Nothing here imports the analysis layer.
"""
