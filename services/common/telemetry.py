"""OpenTelemetry for the services: traces, metrics and JSON logs carrying trace ids.

One `Telemetry` per app (`TELEMETRY`), built at the entry point and passed down; no global
provider is ever set, so tests run many apps side by side, each with in-memory exporters.

- Traces: a server span per request (`telemetry_middleware`, W3C `traceparent` extracted), a
  client span per call to the anchor (`traceparent` injected by `services.anchor.client`), one
  span per sequencer batch and per publication round (`SequencerTelemetry`), and a span per
  object-store call made inside a trace (`TracedStore`). Never a span per entry.
- Metrics: OTel instruments, rendered as Prometheus text on `/metrics` by a pull reader, and
  pushed over OTLP when `OTEL_EXPORTER_OTLP_ENDPOINT` is set and the OTLP exporter is installed.
- Logs: `JsonFormatter`, one JSON object per line with `trace_id` and `span_id` when in a span.
"""

from __future__ import annotations

import contextvars
import importlib
import logging
import math
import time
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterator,
    Mapping,
    Sequence,
    Sized,
)
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, Protocol

import orjson
from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.metrics import Counter, Histogram
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    Gauge,
    InMemoryMetricReader,
    Metric,
    MetricReader,
    Sum,
)
from opentelemetry.sdk.metrics.export import Histogram as HistogramData
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.trace import Link, SpanContext, SpanKind, StatusCode, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from storage.base import ObjectStore, Versioned
from storage.errors import StorageError

log = logging.getLogger("notar.telemetry")

PROPAGATOR = TraceContextTextMapPropagator()  # W3C traceparent / tracestate, nothing else
LATENCY_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 10, 100, 500, 1000, 2500, 5000, 10000, 20000, 50000, 100000)
UNTRACED_ROUTES = frozenset({"/healthz", "/readyz", "/metrics"})  # probes and scrapes


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
        self.tracer: Tracer = self.tracer_provider.get_tracer("notar")
        self.meter = self.meter_provider.get_meter("notar")
        m = self.meter
        self.requests: Counter = m.create_counter(
            "notar_http_requests", unit="1", description="HTTP requests answered, by route, method and status"
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
                    lines += _render(metric)
        return lines

    def shutdown(self) -> None:
        """Flush and stop the exporters (OTLP); the instruments become no-ops."""
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()


TELEMETRY = web.AppKey("telemetry", Telemetry)
# The server span's context, kept on the request for the access log (RequestKey: aiohttp ≥ 3.12).
SPAN_CONTEXT: Any = (
    web.RequestKey("notar_span_context", SpanContext) if hasattr(web, "RequestKey") else "notar_span_context"
)
_CURRENT: contextvars.ContextVar[Telemetry | None] = contextvars.ContextVar("notar_telemetry", default=None)


def current_tracer() -> Tracer | None:
    """The tracer of the app serving the current request (set by the middleware), if any."""
    tel = _CURRENT.get()
    return tel.tracer if tel is not None else None


def inject_traceparent(headers: dict[str, str]) -> dict[str, str]:
    """Add the current span's W3C `traceparent` (and `tracestate`) to `headers`."""
    PROPAGATOR.inject(headers)
    return headers


# -- Prometheus text ---------------------------------------------------------------------------


def _escape(value: object) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(attributes: Mapping[str, Any] | None, extra: str = "") -> str:
    parts = [f'{k.replace(".", "_")}="{_escape(v)}"' for k, v in sorted((attributes or {}).items())]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


def _number(value: float) -> str:
    if isinstance(value, int):
        return str(value)
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def _render(metric: Metric) -> list[str]:
    name = metric.name.replace(".", "_").replace("-", "_")
    data = metric.data
    if isinstance(data, Sum) and data.is_monotonic:
        name = name if name.endswith("_total") else name + "_total"
        kind = "counter"
    elif isinstance(data, Sum | Gauge):
        kind = "gauge"
    elif isinstance(data, HistogramData):
        kind = "histogram"
    else:  # exponential histograms: not used by notar
        return []
    lines = [f"# HELP {name} {_escape(metric.description)}", f"# TYPE {name} {kind}"]
    if isinstance(data, HistogramData):
        for p in data.data_points:
            cumulative = 0
            for bound, count in zip(p.explicit_bounds, p.bucket_counts, strict=False):
                cumulative += count
                le = 'le="' + _number(float(bound)) + '"'
                lines.append(f"{name}_bucket{_labels(p.attributes, le)} {cumulative}")
            inf = 'le="+Inf"'
            lines.append(f"{name}_bucket{_labels(p.attributes, inf)} {p.count}")
            lines.append(f"{name}_sum{_labels(p.attributes)} {_number(p.sum)}")
            lines.append(f"{name}_count{_labels(p.attributes)} {p.count}")
    else:
        lines += [f"{name}{_labels(p.attributes)} {_number(p.value)}" for p in data.data_points]
    return lines


# -- HTTP --------------------------------------------------------------------------------------

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def telemetry_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A server span per request, child of the caller's `traceparent`; request count and time.
    Probes and scrapes (/healthz, /readyz, /metrics) are neither traced nor counted."""
    tel = request.app.get(TELEMETRY)
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else "unmatched"
    if tel is None or route in UNTRACED_ROUTES:
        response: web.StreamResponse = await handler(request)
        return response
    token = _CURRENT.set(tel)
    start = time.perf_counter()
    status = 500
    method = request.method
    try:
        with tel.tracer.start_as_current_span(
            f"{method} {route}",
            context=PROPAGATOR.extract(request.headers),
            kind=SpanKind.SERVER,
            attributes={"http.request.method": method, "http.route": route},
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            request[SPAN_CONTEXT] = span.get_span_context()
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
                span.set_attribute("http.response.status_code", status)
                if status >= 500:
                    span.set_status(StatusCode.ERROR)
    finally:
        _CURRENT.reset(token)
        tel.requests.add(1, {"route": route, "method": method, "status": str(status)})
        tel.request_seconds.record(time.perf_counter() - start, {"route": route, "method": method})


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


# -- the object store --------------------------------------------------------------------------


def _area(key: str) -> str:
    """What a key is about, without what would identify a document: `log/tile`, `documents`…"""
    head, _, rest = key.partition("/")
    return f"{head}/{rest.partition('/')[0]}" if head == "log" and rest else head


class TracedStore:
    """An ObjectStore that times every call and counts failures (`notar_store_errors_total`);
    inside a trace, each call is a client span. Keys stay out of spans: digests are private."""

    def __init__(self, store: ObjectStore, telemetry: Telemetry) -> None:
        self.inner = store
        self._tel = telemetry

    async def _call(self, op: str, key: str, call: Awaitable[Any]) -> Any:
        start = time.perf_counter()
        try:
            if not trace.get_current_span().get_span_context().is_valid:
                return await call
            with self._tel.tracer.start_as_current_span(
                f"store {op}",
                kind=SpanKind.CLIENT,
                attributes={"notar.store.operation": op, "notar.store.area": _area(key)},
                record_exception=False,
                set_status_on_exception=False,
            ) as span:
                try:
                    return await call
                except StorageError as e:
                    span.set_status(StatusCode.ERROR, type(e).__name__)
                    raise
        except StorageError:
            self._tel.store_errors.add(1, {"operation": op})
            raise
        finally:
            self._tel.store_seconds.record(time.perf_counter() - start, {"operation": op})

    async def get(self, key: str) -> bytes:
        data: bytes = await self._call("get", key, self.inner.get(key))
        return data

    async def get_range(self, key: str, start: int, end: int) -> bytes:
        data: bytes = await self._call("get_range", key, self.inner.get_range(key, start, end))
        return data

    async def put(self, key: str, data: bytes) -> None:
        await self._call("put", key, self.inner.put(key, data))

    async def put_if_absent(self, key: str, data: bytes) -> None:
        await self._call("put_if_absent", key, self.inner.put_if_absent(key, data))

    async def put_stream(self, key: str, chunks: AsyncIterable[bytes], *, immutable: bool) -> int:
        call = self.inner.put_stream(key, chunks, immutable=immutable)
        size: int = await self._call("put_stream", key, call)
        return size

    async def get_versioned(self, key: str) -> Versioned:
        found: Versioned = await self._call("get_versioned", key, self.inner.get_versioned(key))
        return found

    async def put_if_version(self, key: str, data: bytes, version: str | None) -> str:
        new: str = await self._call("put_if_version", key, self.inner.put_if_version(key, data, version))
        return new

    async def list(self, prefix: str = "") -> AsyncIterator[str]:
        try:
            async for key in self.inner.list(prefix):
                yield key
        except StorageError:
            self._tel.store_errors.add(1, {"operation": "list"})
            raise

    async def delete(self, key: str) -> None:
        await self._call("delete", key, self.inner.delete(key))

    async def close(self) -> None:
        await self.inner.close()


# -- the sequencer -----------------------------------------------------------------------------


class Waiting(Protocol):
    """A submission waiting in the sequencer: the span it came from and its entries."""

    @property
    def span(self) -> SpanContext: ...

    @property
    def items(self) -> Sized: ...


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
    the others), a span per publication round (parent: its first batch), and batch sizes."""

    def __init__(self, telemetry: Telemetry | None = None) -> None:
        self._tracer: Tracer = telemetry.tracer if telemetry is not None else trace.NoOpTracer()
        self._sizes = telemetry.batch_entries if telemetry is not None else None

    @contextmanager
    def batch(self, groups: Sequence[Waiting]) -> Iterator[None]:
        entries = sum(len(g.items) for g in groups)
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
        parent, links = _parent_and_links(parents)
        span = self._tracer.start_span(
            "anchor.publish",
            context=parent,
            links=links,
            attributes={"notar.tree_size": size, "notar.publish.batches": len(parents)},
        )
        return OpenSpan(span)


# -- logs --------------------------------------------------------------------------------------


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and the trace and span ids of the
    span current when the line was logged (what joins a log line to its trace)."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        ctx = getattr(record, "span_context", None) or trace.get_current_span().get_span_context()
        if ctx.is_valid:
            doc["trace_id"] = format(ctx.trace_id, "032x")
            doc["span_id"] = format(ctx.span_id, "016x")
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(doc, default=str).decode()


class AccessLogger(AbstractAccessLogger):
    """One line per request, after it is answered, joined to its trace: route template (never
    the raw path, which holds tenants' digests), method, status, seconds, client address.
    Successful probes and scrapes are not logged."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        route = "unmatched"
        if isinstance(request, web.Request) and request.match_info.route.resource is not None:
            route = request.match_info.route.resource.canonical
        if route in UNTRACED_ROUTES and response.status < 400:
            return
        self.logger.info(
            "%s %s %d %.3fs from %s",
            request.method,
            route,
            response.status,
            time,
            request.remote,
            extra={"span_context": request.get(SPAN_CONTEXT)},
        )

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging(fmt: str, *, level: int = logging.INFO) -> None:
    """Root logging to stderr as `text` (people) or `json` (log collectors)."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=level, handlers=[handler], force=True)
