"""The ingest service: `POST /v1/digests`, `PUT /v1/documents`, `GET|DELETE /v1/documents/{digest}`."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Callable, Mapping

import orjson
from aiohttp import web

from merkle.digests import Digest, parse_digest
from services.common.answers import COMPACT, accepts_compact, send_json
from services.common.components import NotarConfig
from services.common.index_key import load_index_key
from services.common.problems import body_at_most, body_chunks, read_json
from services.common.resources import STORE, new_app, tenant_of
from services.common.shedding import add_shedding
from services.common.telemetry import TELEMETRY
from services.ingest.documents import Documents
from services.ingest.sharded import ShardedSubmitter
from services.internal.client import AnchorClient
from services.internal.directory import Shards, TableShards
from services.internal.wire import one_receipt
from services.model import BadDigest, Digests, Submitter
from storage.errors import BadRequest, CorruptedError, NotFoundError

SUBMITTER = web.AppKey("submitter", Submitter)
DOCUMENTS = web.AppKey("documents", Documents)
DOCUMENT_MAX = web.AppKey("document_max", int)  # bytes; 0: documents of any size
MAX_DIGESTS = 10_000
MAX_DIGESTS_BODY = 2 * 1024 * 1024
SALT_REMOVED = (
    'the member "salt" is not accepted: the unsalted mode was removed in format v2, every '
    'notarization is salted (its 16 random bytes are in the receipt); send {"digests": [...]} alone'
)


async def post_digests(request: web.Request) -> web.StreamResponse:
    tenant = await tenant_of(request)
    body = await read_json(request, limit=MAX_DIGESTS_BODY)
    if not isinstance(body, dict) or not isinstance(body.get("digests"), list):
        raise BadRequest('expected {"digests": ["blake3:…", …]}', kind="invalid-request")
    if "salt" in body:
        raise BadRequest(SALT_REMOVED, kind="invalid-request")
    raw = body["digests"]
    if len(raw) > MAX_DIGESTS:
        raise BadRequest(
            f"at most {MAX_DIGESTS} digests per request, got {len(raw)}", kind="too-many-digests", status=413
        )
    if not raw:
        raise BadRequest("no digests given", kind="invalid-request")
    try:
        digests = Digests.parse(raw)
    except BadDigest as e:
        raise BadRequest(str(e), kind="invalid-digest", position=e.position) from e
    # The receipts come written by the anchor, which owns the log: passed through unparsed.
    if accepts_compact(request.headers.get("Accept")):
        answer = await request.app[SUBMITTER].submit(tenant, digests, compact=True)
        return await send_json(request, answer, content_type=COMPACT)
    return await send_json(request, await request.app[SUBMITTER].submit(tenant, digests))


async def put_document(request: web.Request) -> web.StreamResponse:
    tenant = await tenant_of(request)
    limit = request.app[DOCUMENT_MAX]
    body = body_at_most(request, limit) if limit else body_chunks(request)
    manifest = await request.app[DOCUMENTS].put(tenant, body)
    answer = await request.app[SUBMITTER].submit(tenant, Digests.parse([manifest.digest]))
    summary = orjson.dumps(manifest.summary())
    return await send_json(
        request, b'{"document":' + summary + b',"receipt":' + one_receipt(answer) + b"}", status=201
    )


def _digest(request: web.Request) -> Digest:
    try:
        return parse_digest(request.match_info["digest"])
    except ValueError as e:
        raise BadRequest(str(e), kind="invalid-digest") from e


async def get_document(request: web.Request) -> web.StreamResponse:
    """The document's bytes, streamed as `Documents.read` checks them: what is found wrong before
    the first byte is a problem (500), after it a cut connection (the headers are gone): the
    client sees a short body, never a whole one that is not the document."""
    tenant = await tenant_of(request)
    digest = _digest(request)
    docs = request.app[DOCUMENTS]
    head = request.method == "HEAD"  # is it stored? (`notar notarize --upload`): no chunk is read
    manifest, chunks = await docs.read(tenant, digest)
    reading = aiter(chunks)
    first = b"" if head else await anext(reading, b"")
    response = web.StreamResponse(
        headers={
            "Content-Type": "application/octet-stream",
            "Content-Length": str(manifest.size),
            "X-Notar-Digest": manifest.digest,
            "Repr-Digest": f"sha-256=:{base64.b64encode(bytes.fromhex(manifest.sha256)).decode()}:",
        }
    )
    await response.prepare(request)
    if head:
        await response.write_eof()
        return response
    await response.write(first)
    try:
        async for data in reading:
            await response.write(data)
    except (CorruptedError, NotFoundError):
        if request.transport is not None:
            request.transport.close()
        raise
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
    config: NotarConfig, submitter: Submitter | None, shards: Shards | None
) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        app[DOCUMENTS] = Documents(app[STORE], index_key=load_index_key(config.keys))
        client: AnchorClient | TableShards | None = None
        if submitter is not None:
            app[SUBMITTER] = submitter
        elif shards is not None:  # in one process: the anchor's shards
            app[SUBMITTER] = ShardedSubmitter(shards, meter=app[TELEMETRY].meter)
        elif config.shards.count > 1:  # split roles: the shards' anchors, from the shard table
            client = TableShards(app[STORE])
            app[SUBMITTER] = ShardedSubmitter(client, meter=app[TELEMETRY].meter)
        else:
            client = AnchorClient(config.http.anchor_url)
            app[SUBMITTER] = client
        yield
        if client is not None:
            await client.close()

    return ctx


def setup(
    app: web.Application,
    config: NotarConfig,
    *,
    submitter: Submitter | None = None,
    shards: Shards | None = None,
) -> None:
    """Add ingest routes to `app`. Entries go to `submitter`, else spread over `shards` (one
    process), else with SHARDS > 1 over the anchors the shard table names
    (services.internal.directory), else to ANCHOR_URL over HTTP."""
    app[DOCUMENT_MAX] = config.http.document_max_bytes
    app.cleanup_ctx.append(ingest_context(config, submitter, shards))
    # refused before anything else when the anchor surely would (services/common/shedding.py)
    add_shedding(app, [("POST", "/v1/digests"), ("PUT", "/v1/documents")], lambda a: a[SUBMITTER].refusal())
    app.router.add_post("/v1/digests", post_digests)
    app.router.add_put("/v1/documents", put_document)
    app.router.add_get("/v1/documents/{digest}", get_document)
    app.router.add_delete("/v1/documents/{digest}", delete_document)


def create_app(config: NotarConfig, *, env: Mapping[str, str] | None = None) -> web.Application:
    app = new_app(config, env, readiness=[])
    setup(app, config)
    return app
