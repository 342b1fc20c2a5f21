"""Analysis time windows: ``since``/``until`` as ISO-8601 instants or relative ages.

Relative values (``30s``, ``15m``, ``2h``, ``7d``, ``1w``) count back from now (a relative
``since`` with an ISO-8601 ``until`` counts back from that instant); an ISO-8601 value
without a zone is UTC. A window that does not start before it ends is an error. The default window is the last hour. Every
window is closed-open ``[start, end)`` and held in UTC nanoseconds, which is what
the SQL binds (``fromUnixTimestamp64Nano``), so a window means the same on a
ClickHouse server in any time zone.

Every input is bounded, so no request can overflow a date or ask for unbounded work:
instants lie in ``DateTime64(9)``'s range (1970-01-01 .. 2262-04-11), relative ages and
window lengths are at most ``MAX_WINDOW_DAYS``, and count limits (``sample_cap``,
``min_traces``) are checked by :func:`check_limit` against the ranges below. A value
out of range is a :class:`~chainmap_otel.errors.ParameterError` carrying the parameter's
logical name, the value and the allowed range; the CLI names its flag, the API its query
parameter.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from chainmap_otel.errors import ParameterError

DEFAULT_SINCE = "1h"
#: Longest window and oldest relative age, in days (ten years and a bit).
MAX_WINDOW_DAYS = 3660
#: Traces sampled per critical-path aggregate (``sample_cap``).
SAMPLE_CAP_RANGE = (1, 100_000)
#: Least traces for a discovery proposal (``min_traces``).
MIN_TRACES_RANGE = (1, 1_000_000_000)
_RELATIVE = re.compile(r"^\s*(\d{1,12}(?:\.\d{1,9})?)\s*(ms|s|m|h|d|w)\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_NS = 1_000_000_000
_MAX_WINDOW_S = MAX_WINDOW_DAYS * 86400
#: The instants a ``DateTime64(9)`` column holds (UTC).
_EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
_LATEST = datetime(2262, 4, 11, tzinfo=UTC)


def check_limit(parameter: str, value: int, allowed: tuple[int, int]) -> int:
    """``value`` if it lies in ``allowed`` (inclusive); else a ParameterError for ``parameter``."""
    low, high = allowed
    if not low <= value <= high:
        raise ParameterError(
            parameter, value, f"{low} to {high}", "{name}={value} is out of range: use {allowed}"
        )
    return value


def parse_count(
    parameter: str, value: str | int | None, default: int, allowed: tuple[int, int]
) -> int:
    """A count as a surface passes it (text, a number, or absent: ``default``), checked to lie
    in ``allowed``; else a ParameterError for ``parameter``."""
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        number = allowed[0] - 1
    low, high = allowed
    if not low <= number <= high:
        raise ParameterError(
            parameter,
            value,
            f"a whole number from {low} to {high}",
            "{name} {value} must be {allowed}",
        )
    return number


#: Longest environment name accepted (``deployment.environment.name`` values are short).
MAX_ENVIRONMENT_CHARS = 128
#: The environment filter that keeps the spans naming no environment (``""`` keeps all).
UNNAMED_ENVIRONMENT = "(none)"


def environment_params(environment: str) -> dict[str, str]:
    """Bind values of an environment filter: ``{environment:String}`` (``""``: every
    environment) and ``{environment_value:String}``, the value the spans' environment must
    equal (``""`` for :data:`UNNAMED_ENVIRONMENT`)."""
    value = "" if environment == UNNAMED_ENVIRONMENT else environment
    return {"environment": environment, "environment_value": value}


@dataclass(frozen=True)
class TimeWindow:
    """A closed-open interval of span start times, in UTC nanoseconds since the epoch, and
    the environment it looks at (``""``: every environment).

    The environment travels with the window because every read surface takes both and
    every query binds both: ``{environment:String}`` is ``""`` or one value of
    ``deployment.environment.name`` / ``deployment.environment``
    (:data:`chainmap_otel.tagging.fields.ENVIRONMENT`), or :data:`UNNAMED_ENVIRONMENT` for
    the spans that name none.
    """

    start_ns: int
    end_ns: int
    environment: str = ""

    @property
    def seconds(self) -> float:
        return (self.end_ns - self.start_ns) / _NS

    @property
    def start(self) -> datetime:
        return datetime.fromtimestamp(self.start_ns / _NS, tz=UTC)

    @property
    def end(self) -> datetime:
        return datetime.fromtimestamp(self.end_ns / _NS, tz=UTC)

    def params(self) -> dict[str, int | str]:
        """Bind values for ``{start_ns:Int64}`` / ``{end_ns:Int64}`` and the environment
        filter (:func:`environment_params`) in window SQL."""
        return {
            "start_ns": self.start_ns,
            "end_ns": self.end_ns,
            **environment_params(self.environment),
        }

    def ending(self, seconds: float) -> TimeWindow:
        """The last ``seconds`` of this window's end (burn-rate lookback windows)."""
        return TimeWindow(self.end_ns - int(seconds * _NS), self.end_ns, self.environment)

    def within(self, environment: str) -> TimeWindow:
        """The same interval in one environment (``""``: all of them)."""
        return TimeWindow(self.start_ns, self.end_ns, environment)

    def to_json(self) -> dict[str, str | float]:
        shown: dict[str, str | float] = {
            "since": self.start.isoformat().replace("+00:00", "Z"),
            "until": self.end.isoformat().replace("+00:00", "Z"),
            "seconds": self.seconds,
        }
        if self.environment:
            shown["environment"] = self.environment
        return shown

    @classmethod
    def last(cls, seconds: float, now: datetime | None = None, environment: str = "") -> TimeWindow:
        end = _to_ns(now or datetime.now(tz=UTC))
        return cls(end - int(seconds * _NS), end, environment)


def parse_environment(text: str | None, parameter: str = "environment") -> str:
    """An environment filter: ``""`` (all) or a name of at most
    :data:`MAX_ENVIRONMENT_CHARS` printable characters; a ParameterError otherwise."""
    value = (text or "").strip()
    if len(value) > MAX_ENVIRONMENT_CHARS or not value.isprintable():
        raise ParameterError(
            parameter,
            value[:MAX_ENVIRONMENT_CHARS] + ("..." if len(value) > MAX_ENVIRONMENT_CHARS else ""),
            f"a deployment.environment.name value of at most {MAX_ENVIRONMENT_CHARS} "
            "printable characters",
            "{name} {value} is not an environment name: use {allowed}",
        )
    return value


def _to_ns(moment: datetime) -> int:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86400 + delta.seconds) * _NS + delta.microseconds * 1000


def relative_seconds(text: str) -> float | None:
    """``15m`` -> 900.0; None when ``text`` is not a relative duration."""
    match = _RELATIVE.match(text)
    if not match:
        return None
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2).lower()]


#: What a window bound may be, as errors say it.
_TIME_FORMS = (
    "a relative age like 30s, 15m, 2h, 7d or an ISO-8601 instant like 2025-01-31T12:00:00Z"
)


def parse_instant(text: str, parameter: str, now: datetime) -> datetime:
    """A relative age (``2h`` = two hours before ``now``), ``now``, or an ISO-8601 instant;
    a ParameterError for ``parameter`` otherwise."""
    value = text.strip()
    if value.lower() == "now":
        return now
    seconds = relative_seconds(value)
    if seconds is not None:
        if seconds > _MAX_WINDOW_S:
            raise ParameterError(
                parameter,
                value,
                f"at most {MAX_WINDOW_DAYS}d",
                "{name} {value} reaches too far back: use {allowed}",
            )
        return now - timedelta(seconds=seconds)
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ParameterError(
            parameter, value, _TIME_FORMS, "{name} {value} is not a time: use {allowed}"
        ) from None
    moment = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    if not _EARLIEST <= moment <= _LATEST:
        raise ParameterError(
            parameter,
            value,
            "an instant between 1970-01-01 and 2262-04-11",
            "{name} {value} is outside the stored time range: use {allowed}",
        )
    return moment


def parse_window(
    since: str | None = None,
    until: str | None = None,
    now: datetime | None = None,
    parameters: tuple[str, str] = ("since", "until"),
    environment: str | None = None,
) -> TimeWindow:
    """The window ``[since, until)`` in ``environment``; defaults: the last hour up to now,
    every environment.

    A bad bound raises ParameterError naming it by ``parameters`` (the logical names of
    the start and the end: drift's lookback starts at ``history``).
    """
    start_name, end_name = parameters
    env = parse_environment(environment)
    current = now or datetime.now(tz=UTC)
    if current.tzinfo is None:
        current = current.replace(tzinfo=UTC)
    end = parse_instant(until, end_name, current) if until else current
    start = parse_instant(since or DEFAULT_SINCE, start_name, current)
    relative_until = until is not None and relative_seconds(until) is not None
    if since and relative_seconds(since) is not None and until and not relative_until:
        # "since 15m, until T" reads as the 15 minutes before the instant T; two relative
        # ages ("since 2h, until 1h") both count back from now.
        start = end - (current - start)
    bounds = {end_name: until or "now"}
    if start < _EARLIEST:
        raise ParameterError(
            start_name,
            since,
            "a shorter window",
            "{name} {value} with {related} starts before 1970-01-01: use {allowed}",
            bounds,
        )
    start_ns, end_ns = _to_ns(start), _to_ns(end)
    if end_ns - start_ns > _MAX_WINDOW_S * _NS:
        raise ParameterError(
            start_name,
            since or DEFAULT_SINCE,
            f"a window of at most {MAX_WINDOW_DAYS} days",
            f"{{name}} {{value}} .. {{related}} spans more than {MAX_WINDOW_DAYS} days: "
            "use {allowed}",
            bounds,
        )
    if start_ns >= end_ns:
        hint = (
            "; both are ages counted back from now, so {name} needs the larger one"
            if relative_until and since and relative_seconds(since) is not None
            else ""
        )
        raise ParameterError(
            start_name,
            since or DEFAULT_SINCE,
            "a start before the end",
            "{name} {value} is not before {related}: the window must start before it ends" + hint,
            bounds,
        )
    return TimeWindow(start_ns, end_ns, env)
