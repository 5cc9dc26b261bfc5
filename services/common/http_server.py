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
import errno
import logging
import signal
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.http_exceptions import BadHttpMethod, BadStatusLine, HttpProcessingError, LineTooLong
from aiohttp.streams import StreamReader
from aiohttp.web_protocol import RequestHandler

from services.common.problems import PROBLEM_JSON, TYPE_BASE, UPLOADS, problem
from storage.errors import ConfigError

log = logging.getLogger("notar.http")
NOSNIFF = ("X-Content-Type-Options", "nosniff")
EarlyAnswer = Callable[[web.Request], web.StreamResponse | None]
EARLY_ANSWERS = web.AppKey("early_answers", list[EarlyAnswer])
"""Answers given before routing and the middlewares, as a static file server in front of the app
would (the verify service's tiles held in memory): the first that is not None is the answer, and
carries its own headers (nosniff included: `on_response_prepare` runs for routed requests only)."""


async def nosniff(request: web.BaseRequest, response: web.StreamResponse) -> None:
    """`on_response_prepare` signal: the header on every answer of the app."""
    response.headers[NOSNIFF[0]] = NOSNIFF[1]
DRAIN_LINGER_S = 1.0
"""Once stopping, how long the rest of a refused body is read and dropped before its connection
closes: long enough for the client to read the answer (closing on unread bytes resets the
connection, and the answer can be lost with it), short enough not to hold the exit."""


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

    def linger(self, seconds: float) -> None:
        """After an early answer, read and drop what is left of the body for at most `seconds`
        (instead of READ_TIMEOUT_S, 10 s at most), then close."""
        self._lingering_time = min(self._lingering_time, seconds)

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
        early = self.app.get(EARLY_ANSWERS)
        if early:
            server.request_handler = _answering_early(tuple(early), server.request_handler)
        return server


def _answering_early(
    early: tuple[EarlyAnswer, ...], routed: Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]
) -> Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]:
    async def handle(request: web.BaseRequest) -> web.StreamResponse:
        if isinstance(request, web.Request):  # the app's request factory makes nothing else
            for answer in early:
                response = answer(request)
                if response is not None:
                    return response
        return await routed(request)

    return handle


def listen_socket(host: str, port: int, *, reuse_port: bool = False) -> socket.socket:
    """A TCP socket bound to host:port, not listening yet: taken before anything else starts, so
    that a port in use stops start-up at once, named as such (ConfigError on LISTEN). With
    `reuse_port`, processes of the same user may bind it too and the kernel spreads the
    connections over those that listen (SO_REUSEPORT: `notar serve --workers`, whose parent
    holds `port_lock` so that no other such group joins)."""
    where = _where(host, port)
    family, kind, proto, _, address = _resolved(host, port)
    try:
        sock = socket.socket(family, kind, proto)
    except OSError as e:
        raise ConfigError(f"cannot listen on {where}: {_reason(e)}", setting="LISTEN") from e
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as aiohttp does: restarts
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
    except OSError as e:
        sock.close()
        raise ConfigError(f"cannot listen on {where}: {_reason(e)}", setting="LISTEN") from e
    return sock


_AddrInfo = tuple[
    socket.AddressFamily,
    socket.SocketKind,
    int,
    str,
    tuple[str, int] | tuple[str, int, int, int] | tuple[int, bytes],
]


def port_lock(host: str, port: int) -> socket.socket:
    """The lock of host:port among `notar serve --workers` groups, held by a group's parent for
    its life: a Unix socket bound in the abstract namespace, which belongs to the network
    namespace as the port does and is let go when the process ends, however it ends.

    SO_REUSEPORT lets any process of the same user bind a port that sockets with it hold. Two
    groups of workers on one port (a second deployment, or an ingest and a verify pod given the
    same LISTEN) would share its connections without a word. With this lock the second stops at
    start-up (ConfigError on LISTEN). A single process binds without SO_REUSEPORT: the kernel
    refuses it a port that anyone holds, and refuses anyone a port that it holds."""
    where = _where(host, port)
    ip, bound = _resolved(host, port)[4][:2]
    lock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        lock.bind(f"\0notar-listen {ip!r} {bound!r}")  # as resolved: localhost is 127.0.0.1
    except OSError as e:
        lock.close()
        if e.errno != errno.EADDRINUSE:
            raise ConfigError(f"cannot listen on {where}: {_reason(e)}", setting="LISTEN") from e
        raise ConfigError(
            f"cannot listen on {where}: address already in use (by another notar serve --workers)",
            setting="LISTEN",
        ) from e
    return lock


def _resolved(host: str, port: int) -> _AddrInfo:
    """The address to bind for host:port (the first getaddrinfo gives); ConfigError on LISTEN."""
    try:
        return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    except OSError as e:
        raise ConfigError(f"cannot listen on {_where(host, port)}: {_reason(e)}", setting="LISTEN") from e


def _where(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _reason(e: OSError) -> str:
    return (e.strerror or str(e)).lower()


def drain(runner: web.AppRunner) -> int:
    """Refuse every request body still being read (uploads): each gets `Draining` (503 with
    Retry-After, connection closed) at once rather than waiting for the rest of its body; every
    connection then lingers DRAIN_LINGER_S at most. How many uploads were waiting for bytes."""
    uploads = runner.app.get(UPLOADS)
    refused = 0 if uploads is None else uploads.drain()
    for connection in runner.server.connections if runner.server is not None else ():
        if isinstance(connection, NotarRequestHandler):
            connection.linger(DRAIN_LINGER_S)
    return refused


def run_app(
    app: web.Application,
    *,
    sock: socket.socket,
    read_timeout: float,
    drain_s: float,
    access_log_class: type[AbstractAccessLogger],
    on_listening: Callable[[], None] = lambda: None,
    on_stopping: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Serve `app` on the bound `sock` until SIGINT or SIGTERM. Start-up (the app's cleanup
    contexts: the store, the keys, the sequencer's recovery) completes before the socket listens
    and `on_listening` is called; one that fails closes what it opened and raises.

    On a signal: uploads in flight are answered 503 with Retry-After at once (`drain`),
    the socket stops listening, other requests get `drain_s` seconds to finish before they are
    cancelled, then the app's cleanup contexts run (the sequencer publishes what it holds).
    `on_stopping` is awaited first, while the app still serves (the workers in front of it drain)."""
    app.on_response_prepare.append(nosniff)
    loop = asyncio.new_event_loop()
    runner = _Runner(
        app,
        handle_signals=False,
        shutdown_timeout=drain_s,
        access_log_class=access_log_class,
        keepalive_timeout=75.0,
        read_timeout=read_timeout,
        # After an early answer (413, 408) aiohttp reads and drops what is left of the body for
        # up to this long, so that the client sees the answer: a stalled body waits it out.
        lingering_time=min(10.0, read_timeout),
    )
    stop = asyncio.Event()

    async def serve() -> None:
        try:  # a start-up that fails (a log refused) still closes what it opened: the store
            await runner.setup()
            await web.SockSite(runner, sock).start()
            on_listening()
            await stop.wait()
            if on_stopping is not None:
                await on_stopping()
            refused = drain(runner)
            log.info("stopping: %d upload(s) refused, other requests get %g s to finish", refused, drain_s)
        finally:
            await runner.cleanup()

    asyncio.set_event_loop(loop)
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        loop.run_until_complete(serve())
    finally:
        try:
            sock.close()
            rest = asyncio.all_tasks(loop)
            for task in rest:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*rest, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)
            loop.close()
