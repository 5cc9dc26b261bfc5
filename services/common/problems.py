"""RFC 9457 problem details: the one middleware that maps notar's errors to HTTP answers."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from services.common.unique_names import check_unique_names
from storage.errors import BadRequest, CorruptedError, NotarError, PushbackError, Unauthorized

__all__ = [  # BadRequest, CorruptedError and Unauthorized live in storage.errors; still importable here
    "PROBLEM_JSON",
    "READ_TIMEOUT",
    "BadRequest",
    "CorruptedError",
    "Handler",
    "Unauthorized",
    "body_at_most",
    "body_chunks",
    "problem",
    "problem_middleware",
    "read_json",
    "to_response",
]

log = logging.getLogger("notar.http")
PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "urn:notar:problem:"


def problem(
    status: int, kind: str, title: str, detail: str, headers: dict[str, str] | None = None, **extra: Any
) -> web.Response:
    body = {"type": TYPE_BASE + kind, "title": title, "status": status, "detail": detail, **extra}
    return web.Response(status=status, body=orjson.dumps(body), content_type=PROBLEM_JSON, headers=headers)


class Draining(PushbackError):
    """The server is stopping: a request body still arriving is refused (503 with Retry-After)
    and its connection closed, rather than kept until the client finishes sending it."""


def to_response(error: BaseException) -> web.Response:
    """The problem+json answer of `error`: what its kind says (storage.errors), or a logged 500
    for anything notar did not raise on purpose."""
    if isinstance(error, NotarError):
        if error.log_level is not None:
            log.log(error.log_level, "%s: %s", error.title, error.message)
        return problem(
            error.status, error.kind, error.title, error.message, headers=error.headers(), **error.extra
        )
    log.exception("unexpected error", exc_info=error)
    return problem(500, "internal", "Internal error", "an unexpected error occurred; it has been logged")


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def problem_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as e:
        if e.status < 400:
            raise
        kind = {404: "not-found", 405: "method-not-allowed", 413: "too-large"}.get(e.status, "http-error")
        return problem(e.status, kind, e.reason, e.text or e.reason)
    except ConnectionError as e:
        if request.transport is None or request.transport.is_closing():
            # The client left midway (an upload cut off): nobody to answer, no error of ours.
            return problem(499, "client-closed-request", "Client closed request", "the client left")
        return to_response(e)
    except Draining as e:
        response = to_response(e)
        response.force_close()  # not kept to read the rest of the body: the server is stopping
        return response
    except Exception as e:  # every error leaves as problem+json
        return to_response(e)


READ_IDLE_S = 30.0  # a client that sends no body byte for this long is cut off (slow clients)
READ_TIMEOUT = web.AppKey("read_timeout_s", float)
"""READ_TIMEOUT_S of the app, when set: replaces READ_IDLE_S."""


class Uploads:
    """The request bodies `body_chunks` is reading, so that a stopping server can refuse them at
    once (`drain`) rather than wait for clients to finish sending."""

    def __init__(self) -> None:
        self.waiting: dict[int, asyncio.Timeout] = {}
        """By request: the read timeout of a body waiting for its next bytes."""
        self.draining = False

    def drain(self) -> int:
        """From now on every body read raises `Draining`; those waiting for bytes wake up to it
        at once. How many were waiting."""
        self.draining = True
        now = asyncio.get_running_loop().time()
        waiting = list(self.waiting.values())
        for timeout in waiting:
            timeout.reschedule(now)
        return len(waiting)


UPLOADS = web.AppKey("uploads", Uploads)
DRAIN_RETRY_S = 2.0  # Retry-After of an upload refused because the server stops: another pod will take it


def _draining() -> Draining:
    return Draining("the server is shutting down; send it again", retry_after=DRAIN_RETRY_S)


async def body_chunks(request: web.Request) -> AsyncIterator[bytes]:
    """The request body as it arrives; BadRequest 408 when it stalls for READ_TIMEOUT_S, Draining
    (503) once the server stops (`Uploads.drain`)."""
    idle = request.config_dict.get(READ_TIMEOUT, READ_IDLE_S)
    uploads = request.config_dict.get(UPLOADS) or Uploads()
    chunks = request.content.iter_any().__aiter__()
    while True:
        if uploads.draining:
            raise _draining()
        try:
            async with asyncio.timeout(idle) as timeout:
                uploads.waiting[id(request)] = timeout
                data = await anext(chunks)
        except StopAsyncIteration:
            return
        except TimeoutError:
            if uploads.draining:
                raise _draining() from None
            raise BadRequest(
                f"the request body stalled for {idle:g} s", kind="request-timeout", status=408
            ) from None
        finally:
            uploads.waiting.pop(id(request), None)
        yield data


async def body_at_most(request: web.Request, limit: int) -> AsyncIterator[bytes]:
    """`body_chunks`, refused with 413 once it exceeds `limit` bytes — at once when its declared
    Content-Length does: never more than `limit` bytes (and one network read) are read."""
    if request.content_length is not None and request.content_length > limit:
        raise BadRequest(
            f"the body is {request.content_length} bytes; at most {limit} are accepted",
            kind="too-large",
            status=413,
        )
    total = 0
    async for data in body_chunks(request):
        total += len(data)
        if total > limit:
            raise BadRequest(f"the body is larger than {limit} bytes", kind="too-large", status=413)
        yield data


async def read_json(request: web.Request, *, limit: int, unique_names: bool = False) -> Any:
    """The request's JSON body, at most `limit` bytes; BadRequest otherwise. With `unique_names`
    an object naming a member twice is refused too (RFC 8259 leaves its meaning to the parser: a
    receipt must not read one way to its verifier and another to the next tool)."""
    content = request.content
    if content.is_eof() and content.exception() is None and (request.content_length or 0) <= limit:
        body = content.read_nowait()  # all of it arrived with the head (most small bodies): one read
        if len(body) > limit:
            raise BadRequest(f"the body is larger than {limit} bytes", kind="too-large", status=413)
    else:
        body = b"".join([data async for data in body_at_most(request, limit)])
    try:
        value = orjson.loads(body)
        if unique_names:
            check_unique_names(body)
    except ValueError as e:  # orjson.JSONDecodeError is one
        raise BadRequest(f"the body is not valid JSON: {e}", kind="malformed-json") from e
    return value
