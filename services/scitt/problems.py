"""RFC 9290 concise problem details, the errors of the SCITT routes only (SCRAPI §2): a CBOR map
``{-1: title, -2: detail}`` as ``application/concise-problem-details+cbor``. The rest of the API
keeps problem+json (services.common.problems).

``concise`` wraps a SCITT handler: whatever it raises leaves as a concise problem with the status
the JSON middleware would give it (401, 404, 503 with Retry-After…), a refused statement as 400
naming its reason (merkle.scitt.StatementError's title), and nothing as a 500 but a bug.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from merkle.cbor import encode
from merkle.scitt import StatementError
from storage.errors import BadRequest, NotarError

log = logging.getLogger("notar.scitt")
CONCISE_PROBLEM = "application/concise-problem-details+cbor"
TITLE, DETAIL = -1, -2

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ScittProblem(Exception):
    """An answer of the SCITT routes other than a statement refused: status, title, detail (and
    Retry-After). Raised by their handlers only, so not a NotarError kind: `concise` answers it."""

    def __init__(self, status: int, title: str, detail: str, *, retry_after: int | None = None) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail, self.retry_after = status, title, detail, retry_after


def concise_problem(
    status: int, title: str, detail: str, headers: dict[str, str] | None = None
) -> web.Response:
    body = encode({TITLE: title, DETAIL: detail})
    return web.Response(status=status, body=body, content_type=CONCISE_PROBLEM, headers=headers)


def to_concise(error: BaseException) -> web.Response:
    """The concise problem of an error raised by a SCITT handler: a refused statement as 400 with
    its reason, a bad request as SCRAPI's "Malformed request", any other notar error with the
    status, title and headers its kind carries (storage.errors), anything else a logged 500."""
    if isinstance(error, StatementError):
        return concise_problem(400, error.title, error.detail)
    if isinstance(error, ScittProblem):
        after = None if error.retry_after is None else {"Retry-After": str(error.retry_after)}
        return concise_problem(error.status, error.title, error.detail, after)
    if isinstance(error, BadRequest):
        return concise_problem(error.status, "Malformed request", error.message, error.headers())
    if isinstance(error, NotarError):
        if error.log_level is not None:
            log.log(error.log_level, "%s: %s", error.title, error.message)
        return concise_problem(error.status, error.title, error.message, error.headers())
    if isinstance(error, web.HTTPException) and error.status >= 400:
        return concise_problem(error.status, error.reason, error.text or error.reason)
    log.exception("unexpected error on a SCITT route", exc_info=error)
    return concise_problem(500, "Internal Error", "an unexpected error occurred; it has been logged")


def concise(handler: Handler) -> Handler:
    """``handler`` answering its errors as concise problem details (module doc)."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPException as e:
            if e.status < 400:
                raise
            return to_concise(e)
        except Exception as e:
            return to_concise(e)

    wrapped.__name__ = handler.__name__
    wrapped.__doc__ = handler.__doc__
    return wrapped
