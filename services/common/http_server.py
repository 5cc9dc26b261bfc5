"""The HTTP server of `notar serve`: aiohttp's, with two defences it lacks against hostile clients.

- A deadline for request heads (READ_TIMEOUT_S). A connection that opens and says nothing, or
  that starts a request and does not finish its head, is cut off (408 problem+json when it sent
  something): slow clients hold a socket for seconds, not for as long as they trickle bytes.
  The deadline runs from the opening and from the first byte of each later request, never
  across the idle time between requests — load balancers keep idle connections to their backends
  for minutes, and aiohttp's keep-alive timer closes those. A stalled body is the handler's to
  refuse (`problems.body_chunks`), with the same timeout.
- Requests aiohttp's parser refuses (a 100 KB header, 10,000 headers, bytes that are not HTTP)
  are answered in problem+json like every other error, and logged in one line that never quotes
  the request: the parser's own message quotes it, with any API key on the offending line.

Every answer, those refusals included, carries `X-Content-Type-Options: nosniff`: a browser
never takes a receipt, a tile or a stored document for HTML or a script.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import suppress
from typing import Any

import orjson
from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.http_exceptions import BadHttpMethod, BadStatusLine, HttpProcessingError, LineTooLong
from aiohttp.streams import StreamReader
from aiohttp.web_protocol import RequestHandler

from services.common.problems import PROBLEM_JSON, TYPE_BASE, problem

log = logging.getLogger("notar.http")
NOSNIFF = ("X-Content-Type-Options", "nosniff")


async def nosniff(request: web.BaseRequest, response: web.StreamResponse) -> None:
    """`on_response_prepare` signal: the header on every answer of the app."""
    response.headers[NOSNIFF[0]] = NOSNIFF[1]


def refusal(exc: HttpProcessingError) -> str:
    """What was wrong with a request the parser refused, without quoting any of its bytes."""
    if isinstance(exc, LineTooLong):
        return f"the request line or a header is longer than {exc.args[1]} bytes"
    if isinstance(exc, BadHttpMethod):
        return "this is not an HTTP/1.1 request"
    if isinstance(exc, BadStatusLine):
        return "the request line is malformed"
    # The parser's messages read "<what>:\n\n  <the offending bytes>": keep only the what.
    what = str(exc.message).split("\n", 1)[0].split(":", 1)[0].strip()
    if what and len(what) <= 80 and what.isprintable() and not set(what) & set("'\"\\"):
        return what
    return "the request is not valid HTTP/1.1"


class NotarRequestHandler(RequestHandler):
    """aiohttp's connection handler, with a deadline for request heads and problem+json refusals."""

    __slots__ = ("_body", "_deadline", "_heard", "_read_timeout")

    def __init__(self, manager: web.Server, *, read_timeout: float, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._read_timeout = read_timeout
        self._deadline: asyncio.TimerHandle | None = None
        self._body: StreamReader | None = None  # of the last request whose head arrived
        self._heard = False  # a byte of the current head arrived

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._arm(heard=False)

    def connection_lost(self, exc: BaseException | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if data and self._deadline is None and (self._body is None or self._body.is_eof()):
            self._arm(heard=True)  # the first bytes of a new request
        elif data:
            self._heard = True
        heads = self._request_count
        super().data_received(data)
        if self._request_count != heads:  # a head is complete (or refused): its handler takes over
            self._disarm()
            self._body = self._messages[-1][1] if self._messages else None

    def _arm(self, *, heard: bool) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        self._heard = heard
        self._deadline = self._loop.call_later(self._read_timeout, self._expire)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expire(self) -> None:
        self._deadline = None
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if self._waiter is None or self._waiter.done():
            # A handler is still answering an earlier request on this connection (the client
            # pipelines): its answer must not be cut. The deadline starts over.
            self._arm(heard=self._heard)
            return
        if self._heard:
            detail = f"the request head was not complete {self._read_timeout:g} s after its first byte"
            body = orjson.dumps(
                {
                    "type": TYPE_BASE + "request-timeout",
                    "title": "Request Timeout",
                    "status": 408,
                    "detail": detail,
                }
            )
            transport.write(
                b"HTTP/1.1 408 Request Timeout\r\nContent-Type: "
                + PROBLEM_JSON.encode()
                + f"\r\n{NOSNIFF[0]}: {NOSNIFF[1]}".encode()
                + b"\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(body)
                + body
            )
            peer = transport.get_extra_info("peername")
            log.info("cut off a slow client at %s: %s", peer[0] if peer else "?", detail)
        self.force_close()

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if isinstance(exc, HttpProcessingError):
            kind, title, detail = "malformed-request", "Bad request", refusal(exc)
            log.info("refused a request from %s: %s", request.remote, detail)
        elif status == 504:
            kind, title, detail = "timeout", "Gateway Timeout", "answering took too long"
        else:
            kind, title = "internal", "Internal error"
            detail = "an unexpected error occurred; it has been logged"
            log.error("unexpected error answering a request from %s", request.remote, exc_info=exc)
        if request.writer.output_size > 0:
            raise ConnectionError("the answer had already begun; the connection is cut instead")
        response = problem(status, kind, title, detail, headers=dict([NOSNIFF]))
        response.force_close()
        return response


class _Server(web.Server):
    def __call__(self) -> RequestHandler:
        return NotarRequestHandler(self, loop=self._loop, **self._kwargs)


class _Runner(web.AppRunner):
    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        server.__class__ = _Server  # the app built aiohttp's Server; only the handler it makes differs
        return server


def run_app(
    app: web.Application,
    *,
    host: str,
    port: int,
    read_timeout: float,
    shutdown_timeout: float,
    access_log_class: type[AbstractAccessLogger],
) -> None:
    """Serve `app` on host:port until SIGINT or SIGTERM, as `web.run_app` does: on a signal the
    app's cleanup contexts run first (the sequencer finishes), then the remaining tasks stop."""
    app.on_response_prepare.append(nosniff)
    loop = asyncio.new_event_loop()
    runner = _Runner(
        app,
        handle_signals=True,
        shutdown_timeout=shutdown_timeout,
        access_log_class=access_log_class,
        keepalive_timeout=75.0,
        read_timeout=read_timeout,
        # After an early answer (413, 408) aiohttp reads and drops what is left of the body for
        # up to this long, so that the client sees the answer: a stalled body waits it out.
        lingering_time=min(10.0, read_timeout),
    )

    async def serve() -> None:
        try:  # a start-up that fails (a log refused) still closes what it opened: the store
            await runner.setup()
            await web.TCPSite(runner, host, port).start()
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()

    main = loop.create_task(serve())
    try:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(main)
    except (web.GracefulExit, KeyboardInterrupt):
        pass
    finally:
        try:
            if not main.done():
                main.cancel()
                with suppress(asyncio.CancelledError):
                    loop.run_until_complete(main)
        finally:
            rest = asyncio.all_tasks(loop)
            for task in rest:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*rest, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
            loop.close()
