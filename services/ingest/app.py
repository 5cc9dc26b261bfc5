"""The ingest service: `POST /v1/digests`, `PUT /v1/documents`, `GET|DELETE /v1/documents/{digest}`."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import orjson
from aiohttp import web

from merkle.digests import Digest, parse_digest
from services.common.config import Settings
from services.common.index_key import load_index_key
from services.common.problems import BadRequest, CorruptedError, body_at_most, body_chunks, read_json
from services.common.receipts import receipts_body, receipts_json
from services.common.resources import STORE, new_app, tenant_of
from services.common.shedding import add_shedding
from services.ingest.documents import Documents
from services.internal.client import AnchorClient
from services.model import Item, Submitter
from storage.errors import NotFoundError

SUBMITTER = web.AppKey("submitter", Submitter)
DOCUMENTS = web.AppKey("documents", Documents)
ORIGIN = web.AppKey("origin", str)
DOCUMENT_MAX = web.AppKey("document_max", int)  # bytes; 0: documents of any size
MAX_DIGESTS = 10_000
MAX_DIGESTS_BODY = 2 * 1024 * 1024
_PREFIXES = frozenset({"blake3:", "sha256:"})
_DIGEST_TEXT = len("blake3:") + 64
_WRITE_SLICE = 256 * 1024
_BULK = 8  # digests from which checking them in bulk beats parse_digest one by one


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


def _canonical_items(raw: list[Any], tenant: str, salted: bool) -> list[Item] | None:
    """The items of `raw` if every one is a canonical digest (SPEC §1), checked in bulk with C
    loops: all strings of 71 characters, known prefixes, and the hex decoded at once re-encoding
    to itself (so lowercase, no spaces). None otherwise: the caller parses one by one to name the
    first bad position. parse_digest per digest was 18% of the event loop under bulk load."""
    if set(map(type, raw)) != {str} or set(map(len, raw)) != {_DIGEST_TEXT} or not (
        {d[:7] for d in raw} <= _PREFIXES
    ):
        return None
    hexes = "".join([d[7:] for d in raw])
    try:
        values = bytes.fromhex(hexes)
    except ValueError:
        return None
    if values.hex() != hexes:
        return None
    return [Item(tenant, Digest(d[:6], values[32 * i : 32 * i + 32]), salted) for i, d in enumerate(raw)]


async def post_digests(request: web.Request) -> web.StreamResponse:
    tenant = await tenant_of(request)
    body = await read_json(request, limit=MAX_DIGESTS_BODY)
    if not isinstance(body, dict) or not isinstance(body.get("digests"), list):
        raise BadRequest('expected {"digests": ["blake3:…", …], "salt": true}', kind="invalid-request")
    salted = body.get("salt", True)
    if not isinstance(salted, bool):
        raise BadRequest('"salt" must be true or false', kind="invalid-request")
    raw = body["digests"]
    if len(raw) > MAX_DIGESTS:
        raise BadRequest(
            f"at most {MAX_DIGESTS} digests per request, got {len(raw)}", kind="too-many-digests", status=413
        )
    if not raw:
        raise BadRequest("no digests given", kind="invalid-request")
    items = _canonical_items(raw, tenant, salted) if len(raw) >= _BULK else None
    if items is None:
        items = []
        for i, d in enumerate(raw):
            try:
                items.append(Item(tenant, parse_digest(d), salted))
            except ValueError as e:
                raise BadRequest(f"digest {i}: {e}", kind="invalid-digest", position=i) from e
    results = await request.app[SUBMITTER].submit(items)
    # The digests were parsed from canonical text only, so `raw` is each item's str(digest).
    body = receipts_body(request.app[ORIGIN], items, results, digests=raw)
    if len(body) <= _WRITE_SLICE:
        return web.Response(body=body, content_type="application/json")
    # 10,000 receipts are ~17 MB. Handed over whole, asyncio (3.11) copies them into the
    # transport's buffer and moves the rest down after every send: written in slices that wait
    # for the socket, the server spends half the CPU on it (10 -> 4.5 ms per answer).
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    response.content_length = len(body)
    await response.prepare(request)
    view = memoryview(body)
    try:
        for at in range(0, len(body), _WRITE_SLICE):
            await response.write(view[at : at + _WRITE_SLICE])
    except ConnectionError:
        pass  # the client left: aiohttp finishes the response and logs it as such
    return response


async def put_document(request: web.Request) -> web.Response:
    tenant = await tenant_of(request)
    limit = request.app[DOCUMENT_MAX]
    body = body_at_most(request, limit) if limit else body_chunks(request)
    manifest = await request.app[DOCUMENTS].put(tenant, body)
    item = Item(tenant, parse_digest(manifest.digest), True)
    results = await request.app[SUBMITTER].submit([item])
    receipt = receipts_json(request.app[ORIGIN], [item], results)[0]
    return _json({"document": manifest.summary(), "receipt": receipt}, status=201)


def _digest(request: web.Request) -> Digest:
    try:
        return parse_digest(request.match_info["digest"])
    except ValueError as e:
        raise BadRequest(str(e), kind="invalid-digest") from e


async def get_document(request: web.Request) -> web.StreamResponse:
    tenant = await tenant_of(request)
    digest = _digest(request)
    docs = request.app[DOCUMENTS]
    manifest = await docs.manifest(tenant, digest)
    first = await docs.chunk(tenant, manifest, 0) if manifest.chunks else b""
    response = web.StreamResponse(
        headers={
            "Content-Type": "application/octet-stream",
            "Content-Length": str(manifest.size),
            "X-Notar-Digest": manifest.digest,
            "Repr-Digest": f"sha-256=:{base64.b64encode(bytes.fromhex(manifest.sha256)).decode()}:",
        }
    )
    await response.prepare(request)
    await response.write(first)
    for position in range(1, len(manifest.chunks)):
        try:
            data = await docs.chunk(tenant, manifest, position)
        except (CorruptedError, NotFoundError):
            # Headers are gone: cut the connection so the client sees a short body, never bad bytes.
            if request.transport is not None:
                request.transport.close()
            raise
        await response.write(data)
    await response.write_eof()
    return response


async def delete_document(request: web.Request) -> web.Response:
    """Erasure: the stored bytes of the caller's document go; its receipts stay valid."""
    tenant = await tenant_of(request)
    digest = _digest(request)
    if not await request.app[DOCUMENTS].delete(tenant, digest):
        raise NotFoundError(f"no document {digest} for this tenant")
    return web.Response(status=204)


def ingest_context(
    settings: Settings, submitter: Submitter | None
) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        app[ORIGIN] = settings.get("ORIGIN")
        app[DOCUMENTS] = Documents(app[STORE], index_key=load_index_key(settings))
        client = None
        if submitter is None:
            client = AnchorClient(settings.get("ANCHOR_URL"))
            app[SUBMITTER] = client
        else:
            app[SUBMITTER] = submitter
        yield
        if client is not None:
            await client.close()

    return ctx


def setup(app: web.Application, settings: Settings, *, submitter: Submitter | None = None) -> None:
    """Add ingest routes to `app`; without `submitter`, entries go to ANCHOR_URL over HTTP."""
    app[DOCUMENT_MAX] = (settings.get("DOCUMENT_MAX_MB") or 0) * 1024 * 1024
    app.cleanup_ctx.append(ingest_context(settings, submitter))
    # refused before anything else when the anchor surely would (services/common/shedding.py)
    add_shedding(app, [("POST", "/v1/digests"), ("PUT", "/v1/documents")], lambda a: a[SUBMITTER].refusal())
    app.router.add_post("/v1/digests", post_digests)
    app.router.add_put("/v1/documents", put_document)
    app.router.add_get("/v1/documents/{digest}", get_document)
    app.router.add_delete("/v1/documents/{digest}", delete_document)


def create_app(settings: Settings, *, env: Mapping[str, str] | None = None) -> web.Application:
    app = new_app(settings, env, readiness=[])
    setup(app, settings)
    return app
