"""OpenTelemetry for the services: traces, metrics and JSON logs carrying trace ids.

One `Telemetry` per app (`TELEMETRY`), built at the entry point and passed down; no global
provider is ever set, so tests run many apps side by side, each with in-memory exporters.

- Traces: a server span per request (`telemetry_middleware`, W3C `traceparent` extracted), a
  client span per call to the anchor (`traceparent` injected by `services.internal.client`), one
  span per sequencer batch and per publication round (`SequencerTelemetry`), and a span per
  object-store call made inside a trace (`TracedStore`). Never a span per entry.
- Metrics: OTel instruments, rendered as Prometheus text on `/metrics` by a pull reader, and
  pushed over OTLP when `OTEL_EXPORTER_OTLP_ENDPOINT` is set and the OTLP exporter is installed.
- Logs: `JsonFormatter`, one JSON object per line with `trace_id` and `span_id` when in a span.

This module holds `Telemetry` and the HTTP middleware; propagation and the sequencer's spans are in
`tracing`, `TracedStore` in `traced_store`, the /metrics text in `prometheus`, logs in `logs`.
"""

from __future__ import annotations

import contextvars
import importlib
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence

from aiohttp import web
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.metrics import CallbackOptions, Counter, Histogram, Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, MetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.trace import SpanContext, SpanKind, StatusCode, TraceFlags, Tracer

from services.common.logs import SPAN_CONTEXT, AccessLogger, JsonFormatter, configure_logging
from services.common.prometheus import render
from services.common.traced_store import TracedStore
from services.common.tracing import (
    PROPAGATOR,
    STATIC_ROUTES,
    UNTRACED_ROUTES,
    SequencerTelemetry,
    current_span_context,
    inject_traceparent,
)

# The entry points are here; the rest is kept importable from here since it moved out.
__all__ = [
    "TELEMETRY",
    "AccessLogger",
    "JsonFormatter",
    "SequencerTelemetry",
    "Telemetry",
    "TracedStore",
    "configure_logging",
    "current_span_context",
    "current_tracer",
    "inject_traceparent",
    "telemetry_context",
    "telemetry_middleware",
]

log = logging.getLogger("notar.telemetry")

LATENCY_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 10, 100, 500, 1000, 2500, 5000, 10000, 20000, 50000, 100000)


class Telemetry:
    """The tracer, the meter and notar's instruments of one app.

    `span_processors` and `metric_readers` are where spans and metrics go besides /metrics:
    in-memory exporters in tests, OTLP in production (`from_env`)."""

    def __init__(
        self,
        *,
        service: str = "notar",
        span_processors: Sequence[SpanProcessor] = (),
        metric_readers: Sequence[MetricReader] = (),
    ) -> None:
        resource = Resource({"service.name": service})
        self.tracer_provider = TracerProvider(resource=resource, shutdown_on_exit=False)
        for processor in span_processors:
            self.tracer_provider.add_span_processor(processor)
        self._pull = InMemoryMetricReader()  # cumulative: what Prometheus expects
        self.meter_provider = MeterProvider(
            metric_readers=[self._pull, *metric_readers], resource=resource, shutdown_on_exit=False
        )
        self.recording = bool(span_processors)
        """Whether spans go anywhere: without a processor (no OTLP endpoint) a request's span is
        never exported, so the middleware gives it an id and no more (`_unrecorded`)."""
        self.tracer: Tracer = self.tracer_provider.get_tracer("notar")
        self.meter = self.meter_provider.get_meter("notar")
        self.served = 0  # requests answered (as notar_http_requests counts them), for the summary at exit
        self._answered: dict[tuple[str, str, int], int] = {}  # by route, method and status
        m = self.meter
        # Observed from those counts when read (a scrape, an OTLP push): Counter.add per request
        # costs more than a tile's whole answer, and a tenth of a single digest's.
        m.create_observable_counter(
            "notar_http_requests",
            [self._observe_answered],
            unit="1",
            description="HTTP requests answered, by route, method and status",
        )
        self.request_seconds: Histogram = m.create_histogram(
            "notar_http_request_duration_seconds",
            unit="s",
            description="time to answer an HTTP request, by route and method",
            explicit_bucket_boundaries_advisory=LATENCY_BUCKETS,
        )
        self.store_errors: Counter = m.create_counter(
            "notar_store_errors", unit="1", description="object store calls that failed, by operation"
        )
        self.store_seconds: Histogram = m.create_histogram(
            "notar_store_operation_seconds",
            unit="s",
            description="time of an object store call, by operation",
            explicit_bucket_boundaries_advisory=LATENCY_BUCKETS,
        )
        self.batch_entries: Histogram = m.create_histogram(
            "notar_batch_entries",
            unit="1",
            description="entries per sequenced batch (one signed checkpoint each)",
            explicit_bucket_boundaries_advisory=BATCH_BUCKETS,
        )
        self.submit_seconds: Histogram = m.create_histogram(
            "notar_submit_to_checkpoint_seconds",
            unit="s",
            description="from a submission reaching the sequencer to its entries in a signed checkpoint",
            explicit_bucket_boundaries_advisory=LATENCY_BUCKETS,
        )

    def count(self, route: str, method: str, status: int) -> None:
        """One answer, in `notar_http_requests` from its next reading on."""
        key = (route, method, status)
        self._answered[key] = self._answered.get(key, 0) + 1
        self.served += 1

    def _observe_answered(self, _: CallbackOptions) -> list[Observation]:
        return [
            Observation(n, {"route": route, "method": method, "status": str(status)})
            for (route, method, status), n in list(self._answered.items())  # one C call: safe from
            # the OTLP reader's thread while the loop counts
        ]

    def observe_store_clock(self, offset: Callable[[], float | None]) -> None:
        """Export ``offset()`` (this pod's wall clock minus the object store's, None while
        unknown) as ``notar_store_clock_offset_seconds``: the alerting rules compare it with
        zero and between pods, which all see the same store."""

        def read(_: CallbackOptions) -> list[Observation]:
            value = offset()
            return [] if value is None else [Observation(round(value, 3))]

        self.meter.create_observable_gauge(
            "notar_store_clock_offset_seconds",
            [read],
            unit="s",
            description="this pod's wall clock minus the object store's (S3 Date header, latest answer)",
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str], *, service: str = "notar") -> Telemetry:
        """With OTLP export when `OTEL_EXPORTER_OTLP_ENDPOINT` is set and the
        opentelemetry-exporter-otlp-proto-http package is installed (it reads the standard
        OTEL_EXPORTER_OTLP_* variables itself); otherwise /metrics and logs only."""
        if not env.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
            return cls(service=service)
        try:
            traces = importlib.import_module("opentelemetry.exporter.otlp.proto.http.trace_exporter")
            metrics = importlib.import_module("opentelemetry.exporter.otlp.proto.http.metric_exporter")
        except ImportError:
            log.warning(
                "OTEL_EXPORTER_OTLP_ENDPOINT is set but opentelemetry-exporter-otlp-proto-http is not "
                "installed: OTLP export is off (/metrics still works)"
            )
            return cls(service=service)
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        return cls(
            service=service,
            span_processors=[BatchSpanProcessor(traces.OTLPSpanExporter())],
            metric_readers=[PeriodicExportingMetricReader(metrics.OTLPMetricExporter())],
        )

    def prometheus(self) -> list[str]:
        """Every instrument as Prometheus text exposition lines (format 0.0.4)."""
        data = self._pull.get_metrics_data()
        if data is None:
            return []
        lines: list[str] = []
        for rm in data.resource_metrics:
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    lines += render(metric)
        return lines

    def shutdown(self) -> None:
        """Flush and stop the exporters (OTLP); the instruments become no-ops."""
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()


TELEMETRY = web.AppKey("telemetry", Telemetry)
_CURRENT: contextvars.ContextVar[Telemetry | None] = contextvars.ContextVar("notar_telemetry", default=None)


def current_tracer() -> Tracer | None:
    """The tracer of the app serving the current request (set by the middleware), if any and if
    its spans go anywhere."""
    tel = _CURRENT.get()
    return tel.tracer if tel is not None and tel.recording else None


# -- HTTP --------------------------------------------------------------------------------------

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def telemetry_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A server span per request, child of the caller's `traceparent` (only its context when no
    span is exported: `_unrecorded`); request count and time.
    Probes and scrapes (/healthz, /readyz, /metrics) are neither traced nor counted; the
    published log's files (STATIC_ROUTES) are counted only."""
    tel = request.app.get(TELEMETRY)
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else "unmatched"
    if tel is None or route in UNTRACED_ROUTES:
        response: web.StreamResponse = await handler(request)
        return response
    if route in STATIC_ROUTES:
        return await _answer(request, handler, lambda status: tel.count(route, request.method, status))
    token = _CURRENT.set(tel)
    start = time.perf_counter()
    method = request.method
    statuses: list[int] = []
    try:
        if not tel.recording:
            unrecorded = _unrecorded(request)
            try:
                return await _answer(request, handler, statuses.append)
            finally:
                otel_context.detach(unrecorded)
        with tel.tracer.start_as_current_span(
            f"{method} {route}",
            context=PROPAGATOR.extract(request.headers),
            kind=SpanKind.SERVER,
            attributes={"http.request.method": method, "http.route": route},
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            request[SPAN_CONTEXT] = span.get_span_context()

            def ended(status: int) -> None:
                statuses.append(status)
                span.set_attribute("http.response.status_code", status)
                if status >= 500:
                    span.set_status(StatusCode.ERROR)

            return await _answer(request, handler, ended)
    finally:
        _CURRENT.reset(token)
        tel.count(route, method, statuses[0] if statuses else 500)
        tel.request_seconds.record(time.perf_counter() - start, {"route": route, "method": method})


def _unrecorded(request: web.Request) -> contextvars.Token[otel_context.Context]:
    """What the middleware does when no span is exported: the request still gets a span context,
    current while it is answered (a child of the caller's `traceparent`, or a new trace) so that
    its log lines carry trace and span ids and the anchor is sent a `traceparent`, but no SDK span
    is made, given attributes, ended and dropped (about 90 µs a request, most of a single-digest
    answer's telemetry). The token to detach it with."""
    parent = PROPAGATOR.extract(request.headers) if "traceparent" in request.headers else None
    caller = trace.get_current_span(parent).get_span_context()
    ids = random.getrandbits  # as the SDK's RandomIdGenerator
    context = SpanContext(
        caller.trace_id if caller.is_valid else ids(128) or 1,
        ids(64) or 1,
        is_remote=False,
        trace_flags=caller.trace_flags if caller.is_valid else TraceFlags(TraceFlags.SAMPLED),
        trace_state=caller.trace_state if caller.is_valid else None,
    )
    request[SPAN_CONTEXT] = context
    return otel_context.attach(trace.set_span_in_context(trace.NonRecordingSpan(context), parent))


async def _answer(request: web.Request, handler: Handler, ended: Callable[[int], None]) -> web.StreamResponse:
    """`handler`'s answer; `ended` is told its status whatever happens (an HTTPException's, 499
    when the client left, else 500)."""
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as e:
        status = e.status
        raise
    except BaseException:
        status = 499 if request.transport is None or request.transport.is_closing() else 500
        raise
    finally:
        ended(status)


def telemetry_context(env: Mapping[str, str]) -> Callable[[web.Application], AsyncIterator[None]]:
    """A cleanup context giving the app a Telemetry from `env` unless one was set before start
    (`notar serve`, tests); it shuts down only the one it made. Its metrics join /metrics."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        made = TELEMETRY not in app
        if made:
            app[TELEMETRY] = Telemetry.from_env(env)
        try:
            yield
        finally:
            if made:
                app[TELEMETRY].shutdown()

    return ctx
