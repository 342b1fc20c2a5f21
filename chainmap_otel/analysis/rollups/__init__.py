"""The rollups: the only writers of chainmap's derived tables, each over closed time slices
under one protocol (:mod:`~chainmap_otel.analysis.rollups.protocol`): the service-graph
edges (:mod:`~chainmap_otel.analysis.rollups.edges`), the chain entries below the root
(:mod:`~chainmap_otel.analysis.rollups.entries`) and the merged traces
(:mod:`~chainmap_otel.analysis.rollups.traces`), refreshed together by
:mod:`~chainmap_otel.analysis.rollups.refresh`. Analyses only read them.
"""
