"""The anchor seen from ingest and verify pods: the same `submit`, `lookup` and `forget` as the
in-process anchor (services.model's `Submitter` and `Lookup`), over the anchor's internal HTTP
routes (services.internal.wire)."""

from __future__ import annotations

from typing import Any

import aiohttp
import orjson
from opentelemetry.trace import SpanKind, StatusCode

from merkle.compact import HEAD as COMPACT_HEAD
from merkle.compact import MEDIA_TYPE as COMPACT
from merkle.compact import TAIL as COMPACT_TAIL
from merkle.digests import Digest
from services.common.telemetry import current_tracer, inject_traceparent
from services.internal.wire import (
    RECEIPTS_HEAD,
    RECEIPTS_TAIL,
    RUN,
    RUN_NODES,
    SCITT_ENTRIES,
    decode_forgotten,
    decode_found,
    decode_run,
    encode_answer,
    encode_page,
    encode_request,
)
from services.model import Digests, Found
from storage.errors import NotarError, NotFoundError, PushbackError, RepeatsCapped, StorageError

ACCEPT_RUN = f"{RUN_NODES}, {RUN};q=0.9, application/json;q=0.5"
"""What a default submission asks the anchor for: RUN_NODES; RUN from an anchor before it (which
looked for RUN anywhere in Accept); receipts from an anchor before RUN."""


class AnchorClient:
    """Talks to `url` (ANCHOR_URL); errors become PushbackError (503 + Retry-After) or StorageError,
    but the anchor's refusal of a request over REPEATS_MAX, which stays a 409 (`_refusal`). Only
    a 503 that says pushback is a PushbackError (nothing of the request was taken: ingest's
    spread re-sends it to another shard for sure); any other 503 (a stopped sequencer, a store
    failure) is a transient StorageError. With `origin` (a frozen shard's: `for_origin`), its
    look-ups and erasures are of that shard, which the anchor reads from the object store."""

    def __init__(
        self, url: str, *, session: aiohttp.ClientSession | None = None, origin: str | None = None
    ) -> None:
        self._url, self._origin, self._owns = url.rstrip("/"), origin, session is None
        self._session = session or aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=60, sock_connect=5),
            json_serialize=lambda o: orjson.dumps(o).decode(),
        )

    def for_origin(self, origin: str) -> AnchorClient:
        """The same anchor, asked about the frozen shard of `origin` (on this one's connections)."""
        return AnchorClient(self._url, session=self._session, origin=origin)

    async def close(self) -> None:
        if self._owns:
            await self._session.close()

    def _of(self, query: dict[str, str]) -> dict[str, str]:
        return query if self._origin is None else {**query, "origin": self._origin}

    async def _call(self, method: str, path: str, **kw: Any) -> bytes:
        return (await self._exchange(method, path, **kw))[0]

    async def _exchange(self, method: str, path: str, **kw: Any) -> tuple[bytes, str]:
        """One call, its answer and the answer's content type, in a client span of the serving
        app's trace when there is one; the W3C `traceparent` goes along either way, so the
        anchor's spans join the caller's trace."""
        tracer = current_tracer()
        if tracer is None:
            return await self._send(method, path, inject_traceparent({}), **kw)
        with tracer.start_as_current_span(
            f"anchor {method} {path}",
            kind=SpanKind.CLIENT,
            attributes={"http.request.method": method, "server.address": self._url},
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                return await self._send(method, path, inject_traceparent({}), **kw)
            except (StorageError, PushbackError) as e:
                span.set_status(StatusCode.ERROR, type(e).__name__)
                raise

    async def _send(self, method: str, path: str, trace: dict[str, str], **kw: Any) -> tuple[bytes, str]:
        where = f"{self._url}{path}"
        headers = {**trace, **kw.pop("headers", {})}
        try:
            async with self._session.request(method, where, headers=headers, **kw) as r:
                body = await r.read()
                if r.status == 503:
                    if _kind(body) not in (None, PushbackError.kind):
                        raise _sealed(body) or StorageError(
                            f"the anchor at {self._url} is unavailable", location=self._url, transient=True
                        )
                    retry = float(r.headers.get("Retry-After", "1"))
                    raise PushbackError(f"the anchor at {self._url} is busy", retry_after=retry)
                if r.status == 404:
                    raise NotFoundError(f"the anchor at {self._url} has no {path}")
                refused = _refusal(r.status, body)
                if refused is not None:
                    raise refused
                if r.status != 200:
                    raise StorageError(
                        f"the anchor at {where} answered {r.status}: {body[:300]!r}",
                        location=self._url,
                        transient=r.status >= 500,
                    )
                return body, r.content_type
        except aiohttp.ClientError as e:
            raise StorageError(
                f"cannot reach the anchor at {where}: {e}", location=self._url, transient=True
            ) from e

    def refusal(self, count: int = 1) -> NotarError | None:
        return None  # only the anchor knows; it refuses before reading the body (anchor/app.py)

    async def submit(self, tenant: str, digests: Digests, *, compact: bool = False) -> bytes:
        """The anchor's answer, passed through as it is (its framing checked, nothing parsed);
        with `compact`, its compact form (merkle.compact). The default answer's receipts are
        written here, from the material the anchor sends (services.internal.wire.RUN), with the
        anchor's own writer; an anchor that does not send it is passed through."""
        headers = {"Content-Type": "application/json", "Accept": COMPACT if compact else ACCEPT_RUN}
        answer, kind = await self._exchange(
            "POST", "/internal/v1/entries", data=encode_request(tenant, digests), headers=headers
        )
        if kind in (RUN, RUN_NODES) and not compact:
            try:
                origin, run = decode_run(answer)
                return encode_answer(origin=origin, tenant=tenant, digests=digests.texts, results=run)
            except ValueError as e:
                raise StorageError(
                    f"malformed answer from the anchor at {self._url}: {e}", location=self._url
                ) from e
        head, tail = (COMPACT_HEAD, COMPACT_TAIL) if compact else (RECEIPTS_HEAD, RECEIPTS_TAIL)
        if not (answer.startswith(head) and answer.endswith(tail)):
            raise StorageError(
                f"malformed answer from the anchor at {self._url}: {answer[:80]!r}", location=self._url
            )
        return answer

    async def register(self, entry: bytes, wait_s: float) -> bytes | None:
        """services.model.Registrations over `POST /internal/v1/scitt/entries`."""
        answer = await self._call(
            "POST",
            SCITT_ENTRIES,
            params={"wait_ms": str(round(wait_s * 1000))},
            data=entry,
            headers={"Content-Type": "application/octet-stream"},
            timeout=aiohttp.ClientTimeout(total=wait_s + 30, sock_connect=5),
        )
        return answer or None

    async def receipt(self, entry: bytes) -> bytes | None:
        return await self._call("GET", f"{SCITT_ENTRIES}/{entry.hex()}") or None

    async def lookup(
        self, tenant: str, digest: Digest, *, limit: int | None = None, after: int | None = None
    ) -> list[Found]:
        query = {"tenant": tenant, "digest": str(digest), **encode_page(limit, after)}
        raw = await self._call("GET", "/internal/v1/entries", params=self._of(query))
        try:
            return decode_found(orjson.loads(raw))
        except ValueError as e:
            raise StorageError(f"{e} (the anchor at {self._url})", location=self._url) from e

    async def forget(self, tenant: str, digest: Digest) -> int:
        query = {"tenant": tenant, "digest": str(digest)}
        raw = await self._call("DELETE", "/internal/v1/entries", params=self._of(query))
        try:
            return decode_forgotten(orjson.loads(raw))
        except ValueError as e:
            raise StorageError(f"{e} (the anchor at {self._url})", location=self._url) from e


def _kind(body: bytes) -> str | None:
    """The problem kind of an error answer (`urn:notar:problem:<kind>`), None when it has none."""
    try:
        kind = orjson.loads(body).get("type")
    except (orjson.JSONDecodeError, AttributeError):
        return None
    return kind.rpartition(":")[2] if isinstance(kind, str) else None


def _sealed(body: bytes) -> StorageError | None:
    """A sealed sequencer's refusal (a freezing shard's, `sealed: true`), relayed with its detail:
    the other 503s' details (a lease lost, a bucket) stay inside."""
    problem = orjson.loads(body)
    if problem.get("sealed") is not True:
        return None
    error = StorageError(str(problem.get("detail", "the shard is sealed"))[:300], transient=True)
    error.extra = {"sealed": True}
    return error


def _refusal(status: int, body: bytes) -> RepeatsCapped | None:
    """The anchor's refusal that ingest passes on to its client as it is (a 409
    ``too-many-repeats`` problem: services.anchor.repeats), or None for any other answer."""
    if status != RepeatsCapped.status:
        return None
    try:
        problem = orjson.loads(body)
        if problem["type"].endswith(":" + RepeatsCapped.kind):
            detail, digest, cap = str(problem["detail"]), str(problem["digest"]), int(problem["cap"])
            return RepeatsCapped(detail, digest=digest, cap=cap)
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
        pass
    return None
