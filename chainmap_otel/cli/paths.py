"""How ``chainmap critical-path TRACE_ID`` prints a trace's critical path, and the path of
the chain instance it starts when that runs on through a queue."""

from __future__ import annotations

from typing import Any

from chainmap_otel.cli.app import print_table


def _rows(sections: list[dict[str, Any]], traces: list[str] | None = None) -> list[tuple[str, ...]]:
    """One row per section; with ``traces``, led by the number of the section's trace."""
    start = sections[0]["start_unix_nano"] if sections else 0
    return [
        (
            *((str(traces.index(s["trace_id"]) + 1),) if traces is not None else ()),
            s["service"],
            s["name"],
            f"{(s['start_unix_nano'] - start) / 1e6:.3f}",
            f"{(s['end_unix_nano'] - s['start_unix_nano']) / 1e6:.3f}",
            s["span_id"],
        )
        for s in sections
    ]


def print_trace_path(result: dict[str, Any]) -> None:
    """The trace's sections, then (``instance``) the instance's across its traces."""
    print_table(
        f"critical path of {result['trace_id']}",
        ("service", "operation", "at ms", "ms", "span"),
        _rows(result["sections"]),
        wrap=("service", "operation"),
    )
    instance = result.get("instance")
    if instance:
        traces = instance["traces"]
        print_table(
            f"the chain instance it starts, end to end {instance['end_to_end_ms']:.3f} ms over "
            f"{len(traces)} traces (a queue wait is its own section)",
            ("trace", "service", "operation", "at ms", "ms", "span"),
            _rows(instance["sections"], traces),
            wrap=("service", "operation"),
        )
        print_table(
            "the instance's traces", ("trace", "id"), [(str(n), t) for n, t in enumerate(traces, 1)]
        )
