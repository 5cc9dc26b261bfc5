"""Logs joined to traces: `JsonFormatter` (one JSON object per line with `trace_id` and `span_id`
when in a span), the access log (`AccessLogger`) and the root logging set-up."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import orjson
from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from opentelemetry import trace
from opentelemetry.trace import SpanContext

from services.common.tracing import STATIC_ROUTE, STATIC_ROUTES, UNTRACED_ROUTES

# The server span's context, kept on the request for the access log (RequestKey: aiohttp ≥ 3.12).
SPAN_CONTEXT: Any = (
    web.RequestKey("notar_span_context", SpanContext) if hasattr(web, "RequestKey") else "notar_span_context"
)


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
    Successful probes, scrapes and static files (the published log's) are not logged."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        route = request.get(STATIC_ROUTE, "unmatched")  # answered before routing: named by its answerer
        if route in STATIC_ROUTES and response.status < 400:
            return
        try:
            resource = request.match_info.route.resource if isinstance(request, web.Request) else None
        except (AssertionError, AttributeError):  # refused by the parser, never routed: no match info
            resource = None
        if resource is not None:
            route = resource.canonical
        if response.status < 400 and (route in UNTRACED_ROUTES or route in STATIC_ROUTES):
            return
        if not self.logger.isEnabledFor(logging.INFO):
            return
        # Made and handled as Logger.info would, less its search of the stack for the caller's
        # file and line (about a third of the line's cost), which no format of ours shows.
        self.logger.handle(
            self.logger.makeRecord(
                self.logger.name,
                logging.INFO,
                __file__,
                0,
                "%s %s %d %.3fs from %s",
                (request.method, route, response.status, time, request.remote),
                None,
                extra={"span_context": request.get(SPAN_CONTEXT)},
            )
        )

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)


class FailuresLogger(AccessLogger):
    """The access log of requests that failed only: the anchor behind `notar serve --workers`,
    whose workers log every public request already."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        if response.status >= 400:
            super().log(request, response, time)


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging(fmt: str, *, level: int = logging.INFO) -> None:
    """Root logging to stderr as `text` (people) or `json` (log collectors)."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=level, handlers=[handler], force=True)
