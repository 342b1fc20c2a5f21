"""The span scope every helper of :mod:`chainmap_otel.track` is made of, and the tracer they
share: a span around a block or around each call of a function, with an exception leaving it
recorded as the semantic conventions say."""

from __future__ import annotations

import functools
import inspect
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from contextvars import Token
from types import TracebackType
from typing import Any, TypeVar, cast

from opentelemetry import context as context_api
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode, TracerProvider
from opentelemetry.util.types import AttributeValue

logger = logging.getLogger("chainmap_otel.tagging.track")

SCOPE_NAME = "chainmap_otel.track"
ATTR_ERROR_TYPE = "error.type"

F = TypeVar("F", bound=Callable[..., Any])
S = TypeVar("S", bound="SpanScope")

_provider: TracerProvider | None = None


def use_tracer_provider(provider: TracerProvider | None) -> None:
    """Send the helpers' spans to ``provider`` instead of the global one (``None`` restores it).

    For apps that keep several providers, and for tests.
    """
    global _provider
    _provider = provider


def _tracer() -> trace.Tracer:
    return trace.get_tracer(SCOPE_NAME, tracer_provider=_provider)


def record_error(span: Span, exc: BaseException, description: str | None = None) -> None:
    """Record ``exc`` on ``span`` as the semantic conventions say: exception event,
    ``error.type``, status Error."""
    if not span.is_recording():
        return
    span.record_exception(exc)
    span.set_attribute(ATTR_ERROR_TYPE, type(exc).__qualname__)
    span.set_status(Status(StatusCode.ERROR, description or f"{type(exc).__name__}: {exc}"))


def _attrs(**values: AttributeValue | None) -> dict[str, AttributeValue]:
    return {key: value for key, value in values.items() if value is not None}


class SpanScope(AbstractContextManager["SpanScope"]):
    """A span around a block (``with``) or around every call of a function (decorator).

    An exception leaving the block is recorded on the span (exception event,
    ``error.type``, status Error) and re-raised. Used as a decorator, each call
    gets its own span; coroutine functions are awaited inside the span.
    """

    def __init__(
        self,
        name: str,
        attributes: Mapping[str, AttributeValue] | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        *,
        context: Context | None = None,
        links: Sequence[Link] = (),
    ) -> None:
        self.name = name
        self.kind = kind
        self.attributes: dict[str, AttributeValue] = dict(attributes or {})
        self.context = context
        self.links = tuple(links)
        self._span: Span = trace.INVALID_SPAN
        self._scope: AbstractContextManager[Span] | None = None
        self._token: Token[Context] | None = None
        self._started = 0.0

    @property
    def span(self) -> Span:
        """The span of the current ``with`` block (a non-recording span outside it)."""
        return self._span

    def set_attribute(self, key: str, value: AttributeValue) -> None:
        if self._span.is_recording():
            self._span.set_attribute(key, value)

    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self._started) * 1000.0

    def _fresh(self: S) -> S:
        clone = object.__new__(type(self))
        clone.__dict__.update(self.__dict__)
        clone.attributes = dict(self.attributes)
        clone._span = trace.INVALID_SPAN
        clone._scope = None
        clone._token = None
        return clone

    def __enter__(self: S) -> S:
        # A given context (a consumer's message) becomes the current one, baggage included.
        self._token = context_api.attach(self.context) if self.context is not None else None
        self._scope = _tracer().start_as_current_span(
            self.name,
            kind=self.kind,
            attributes=self.attributes,
            links=self.links,
            record_exception=False,
            set_status_on_exception=False,
        )
        self._span = self._scope.__enter__()
        self._started = time.perf_counter()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        scope, self._scope = self._scope, None
        try:
            if self._span.is_recording():
                self._finish(exc)
        except Exception:
            logger.exception("chainmap: finishing span %r failed", self.name)
        finally:
            if scope is not None:
                scope.__exit__(exc_type, exc, tb)
            token, self._token = self._token, None
            if token is not None:
                context_api.detach(token)
            self._span = trace.INVALID_SPAN

    def _finish(self, exc: BaseException | None) -> None:
        """Called with the span still open and recording; subclasses add their attributes."""
        if exc is not None and not isinstance(exc, GeneratorExit):
            record_error(self._span, exc)

    def __call__(self, func: F) -> F:
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                with self._fresh():
                    return await func(*args, **kwargs)

            return cast(F, async_wrapper)

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with self._fresh():
                return func(*args, **kwargs)

        return cast(F, wrapper)
