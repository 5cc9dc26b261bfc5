"""Trace propagation and the sequencer's spans: W3C `traceparent` in and out, a span per batch
(parent: the first submission in it, links to the others) and per publication round."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Protocol

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Link, SpanContext, StatusCode, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

if TYPE_CHECKING:
    from services.common.telemetry import Telemetry

PROPAGATOR = TraceContextTextMapPropagator()  # W3C traceparent / tracestate, nothing else
UNTRACED_ROUTES = frozenset({"/healthz", "/readyz", "/metrics"})  # probes and scrapes
STATIC_ROUTES = frozenset(
    {"/log/checkpoint", "/log/tile/{path}", "/log/{shard}/checkpoint", "/log/{shard}/tile/{path}"}
)
"""The published log's files, answered as a static file server would: no span, no timing and no
access log line when they succeed, only a count (`Telemetry.count`): their answer costs
a few microseconds, which a span, a histogram and a log line would multiply."""
STATIC_ROUTE = "notar_static_route"
"""The request key naming the static route of a request answered before routing (it has no
match_info): the access log reads it."""


def inject_traceparent(headers: dict[str, str]) -> dict[str, str]:
    """Add the current span's W3C `traceparent` (and `tracestate`) to `headers`."""
    PROPAGATOR.inject(headers)
    return headers


class Waiting(Protocol):
    """A submission waiting in the sequencer: the span it came from and its entries."""

    @property
    def span(self) -> SpanContext: ...

    @property
    def size(self) -> int:
        """How many entries it holds."""
        ...


def current_span_context() -> SpanContext:
    """The current span's context (invalid outside a trace): what a batch links back to."""
    return trace.get_current_span().get_span_context()


def _parent_and_links(parents: Sequence[SpanContext]) -> tuple[otel_context.Context | None, list[Link]]:
    """The first valid context as parent (so the first caller's trace goes on into the batch and
    the store), every other one as a link; the SDK keeps at most 128 links."""
    valid = [p for p in parents if p.is_valid]
    if not valid:
        return None, []
    parent = trace.set_span_in_context(trace.NonRecordingSpan(valid[0]))
    return parent, [Link(p) for p in valid[1:129]]


class OpenSpan:
    """A span made current until `end()`, for code that cannot be wrapped in a `with`."""

    def __init__(self, span: trace.Span) -> None:
        self._span = span
        self._token = otel_context.attach(trace.set_span_in_context(span))

    def end(self, error: BaseException | None = None) -> None:
        if error is not None:
            self._span.set_status(StatusCode.ERROR, f"{type(error).__name__}: {error}")
        otel_context.detach(self._token)
        self._span.end()


class SequencerTelemetry:
    """What the sequencer reports: a span per batch (parent: the first submission in it, links to
    the others), a span per publication round (parent: its first batch), and batch sizes.

    When no span is exported (`Telemetry.recording` false: no OTLP endpoint), no span is made:
    the first submission's span context is made current instead, so that what the batch logs
    still carries its caller's trace (a span per batch cost ~6 % of the anchor's GIL with
    single-digest requests)."""

    def __init__(self, telemetry: Telemetry | None = None) -> None:
        self._tracer: Tracer = telemetry.tracer if telemetry is not None else trace.NoOpTracer()
        self._recording = telemetry is not None and telemetry.recording
        self._sizes = telemetry.batch_entries if telemetry is not None else None

    @contextmanager
    def batch(self, groups: Sequence[Waiting]) -> Iterator[None]:
        entries = sum(g.size for g in groups)
        if not self._recording:
            token = otel_context.attach(trace.set_span_in_context(_first([g.span for g in groups])))
            try:
                yield
            finally:
                otel_context.detach(token)
        else:
            parent, links = _parent_and_links([g.span for g in groups])
            with self._tracer.start_as_current_span(
                "anchor.batch",
                context=parent,
                links=links,
                attributes={"notar.batch.entries": entries, "notar.batch.submissions": len(groups)},
            ):
                yield
        if self._sizes is not None:
            self._sizes.record(entries)

    def publishing(self, parents: Sequence[SpanContext], size: int) -> OpenSpan:
        if not self._recording:
            return OpenSpan(_first(parents))
        parent, links = _parent_and_links(parents)
        span = self._tracer.start_span(
            "anchor.publish",
            context=parent,
            links=links,
            attributes={"notar.tree_size": size, "notar.publish.batches": len(parents)},
        )
        return OpenSpan(span)


def _first(parents: Sequence[SpanContext]) -> trace.Span:
    """The first valid context of `parents` as an unrecorded span (an invalid one when none is)."""
    valid = next((p for p in parents if p.is_valid), trace.INVALID_SPAN_CONTEXT)
    return trace.NonRecordingSpan(valid)
