"""The weight of a sampled span: OTEP 235's adjusted count, defined once for Python and SQL.

A sampler that keeps a trace with probability ``p`` writes its rejection threshold into the
W3C ``tracestate`` as the ``th`` sub-key of the ``ot`` entry (``ot=th:e666;rv:...``): up to
14 hex digits of a 56-bit threshold ``T``, trailing zeros dropped, so ``th:8`` is
``0x80000000000000`` (p = 0.5) and ``th:0`` keeps everything. ``p = 1 - T / 2**56`` and the
span stands for ``1 / p`` spans of the unsampled fleet: its *adjusted count*. A span without
``ot=th`` (never sampled, or sampled by a sampler that does not say so) counts once, which is
what the spanmetrics connector and Tempo do too.

Every weighted number chainmap shows (rates, error ratios, percentiles, burn rates, edge
calls) multiplies by :func:`adjusted_count`, and the SQL surfaces render
:func:`adjusted_count_sql` into their queries, so the two readings cannot drift apart.
A malformed threshold (not hex, longer than 14 digits, empty) counts once: a bad
``tracestate`` never makes a span disappear or count as thousands.
"""

from __future__ import annotations

import re

#: 2**56: the threshold's range (OTEP 235's 56 bits of randomness).
MAX_THRESHOLD = 1 << 56
#: ClickHouse's weighted t-digest takes an integer weight: the adjusted count times this,
#: rounded (three decimals of 1/p survive: p = 0.3 weighs 3333, not 3), at most
#: :data:`MAX_DIGEST_WEIGHT` (p below about 2.3e-7 all weigh the same).
DIGEST_WEIGHT_SCALE = 1000
MAX_DIGEST_WEIGHT = (1 << 32) - 1

_OT_ENTRY = re.compile(r"(?:^|,)[ \t]*ot=([^,]*)")
_THRESHOLD = re.compile(r"^[0-9a-f]{1,14}$")


def threshold(trace_state: str) -> int:
    """The rejection threshold ``T`` in ``trace_state`` (0 when absent or malformed)."""
    if "ot=" not in trace_state:
        return 0
    entry = _OT_ENTRY.search(trace_state)
    if entry is None:
        return 0
    for part in entry.group(1).split(";"):
        key, _, value = part.strip().partition(":")
        if key == "th":
            if not _THRESHOLD.match(value):
                return 0
            return int(value.ljust(14, "0"), 16)
    return 0


def adjusted_count(trace_state: str) -> float:
    """How many spans of the unsampled fleet this span stands for (``1 / p``, at least 1)."""
    t = threshold(trace_state)
    return MAX_THRESHOLD / (MAX_THRESHOLD - t) if t else 1.0


def threshold_for(probability: float) -> str:
    """The ``th`` value a sampler keeping ``probability`` of traces writes (tests, demo)."""
    if not 0 < probability <= 1:
        raise ValueError(f"a sampling probability is in (0, 1], got {probability!r}")
    t = round((1 - probability) * MAX_THRESHOLD)
    return (f"{t:014x}".rstrip("0")) or "0"


def adjusted_count_sql(trace_state: str = "TraceState") -> str:
    """:func:`adjusted_count` as a ClickHouse ``Float64`` expression over a ``String``
    column. The threshold's hex digits are right-padded to 14, decoded big-endian into the
    low 7 bytes of a UInt64; a missing or malformed ``th`` gives 0, so weight 1. The
    sub-key separator is written ``\\x3b``, not ``;``, so the expression can sit in a schema
    file, whose statements are split at ``;``."""
    hex_digits = (
        f"extract(extract({trace_state}, '(?:^|,)[ \\t]*ot=([^,]*)'), "
        "'(?:^|\\x3b)[ \\t]*th:([0-9a-f]{1,14})(?:[ \\t]*(?:\\x3b|$))')"
    )
    value = f"reinterpretAsUInt64(reverse(unhex(rightPad({hex_digits}, 14, '0'))))"
    return f"({MAX_THRESHOLD} / ({MAX_THRESHOLD} - {value}))"


def digest_weight_sql(trace_state: str = "TraceState") -> str:
    """The integer weight of a span in a ``quantilesTDigestWeighted`` state:
    :func:`adjusted_count_sql` scaled by :data:`DIGEST_WEIGHT_SCALE`, rounded and bounded.
    The scale cancels out of every quantile (only relative weights matter)."""
    return (
        f"toUInt64(least(round({adjusted_count_sql(trace_state)} * {DIGEST_WEIGHT_SCALE}), "
        f"{MAX_DIGEST_WEIGHT}))"
    )
