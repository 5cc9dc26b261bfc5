"""The verify service: receipts (upgraded when anchored), proofs, keys, the published log, and
receipt verification. Stateless: everything comes from the object store and the anchor's index."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from merkle.anchors.rfc3161 import load_certificates
from merkle.checkpoint import parse_checkpoint
from merkle.digests import Digest, parse_digest
from merkle.note import parse_note
from merkle.receipt import Receipt
from merkle.tiles import parse_tile_path
from services.common.components import NotarConfig
from services.common.http_server import EARLY_ANSWERS, EarlyAnswer
from services.common.problems import read_json
from services.common.resources import STORE, new_app, tenant_of
from services.common.shedding import add_shedding
from services.common.telemetry import TELEMETRY
from services.common.tracing import STATIC_ROUTE
from services.internal.client import AnchorClient
from services.internal.directory import FixedShards, ShardAnchor, ShardLink, Shards, TableShards
from services.model import Found
from services.published import layout
from services.published.shards import Shard
from services.published.trust import document_policy, merge_documents
from services.verify.page import verify_page
from services.verify.pool import Trusted, VerifyPool, trust_of
from services.verify.shards import View, Views, clock_time
from services.verify.static import ImmutableCache, LogFiles, answer
from storage.errors import BadRequest, ConfigError, NotarError, NotFoundError, PushbackError, StorageError

VIEWS = web.AppKey("views", Views)
TSA_CAS = web.AppKey("tsa_cas", list[x509.Certificate])
POOL = web.AppKey("verify_pool", VerifyPool)
LOG_FILES = web.AppKey("log_files", LogFiles)
MAX_VERIFY_BODY = 1024 * 1024
UNAVAILABLE_HEADER = "Notar-Shards-Unavailable"
"""On a look-up answered while some shards did not answer: their origins. The receipt is genuine;
an earlier notarization of the digest may be in one of those shards (ask again later)."""
MAX_RECEIPTS = 1000  # ?all=true lists at most this many a page (the earliest first)
PAGE_SIZE = 100  # ... and this many when the request does not say
IMMUTABLE = layout.IMMUTABLE
SHARD_ID = "[1-9][0-9]{0,8}"  # /log/<i>/: shard 0 is /log/ itself


def _json(body: Any, *, cache: str | None = None) -> web.Response:
    headers = {"Cache-Control": cache} if cache else None
    return web.Response(body=orjson.dumps(body), content_type="application/json", headers=headers)


def _int(request: web.Request, name: str) -> int:
    raw = request.query.get(name)
    if raw is None or not _decimal(raw):
        raise BadRequest(
            f"query parameter {name!r} must be a non-negative decimal integer", kind="invalid-parameter"
        )
    return int(raw)


async def _receipt(view: View, tenant: str, digest: Digest, index: int, salt: bytes, note: str) -> Receipt:
    """The receipt of `tenant`'s notarization of `digest` at `index` of the shard `view` with
    `salt`, against that log's latest checkpoint `note`, or against the anchored checkpoint
    containing it with the most kinds (``AnchorStore.best_for``), with that checkpoint's anchors."""
    records: list[dict[str, Any]] = []
    anchored = await view.anchored.best_for(index)
    if anchored is not None:
        note, records = anchored
    cp = parse_checkpoint(parse_note(note).text, origin=view.origin)
    if index >= cp.size:
        raise PushbackError(f"entry {index} is not published yet", retry_after=1)
    proof = await view.reader.inclusion_proof(index, cp.size)
    return Receipt.build(
        digest=digest,
        salt=salt,
        subject=tenant,
        origin=view.origin,
        index=index,
        tree_size=cp.size,
        inclusion=proof,
        checkpoint=note,
        anchors=records,
    )


async def _receipts(view: View, tenant: str, digest: Digest, found: Sequence[Found]) -> list[Receipt]:
    """The receipts of the notarizations `found` in the shard `view`."""
    note, _ = await view.reader.checkpoint_covering(max(f.index for f in found))
    return list(
        await asyncio.gather(*(_receipt(view, tenant, digest, f.index, f.salt, note) for f in found))
    )


def _searched(views: Sequence[View]) -> list[View]:
    """The shards a look-up asks: every one but a frozen shard no anchor reads (an anchor reads a
    frozen shard's index from the store: services.internal.directory); PushbackError while an
    unfrozen shard has no anchor."""
    return [v for v in views if v.lookup is not None or v.shard.state != "frozen"]


async def get_receipt(request: web.Request) -> web.Response:
    """The receipt of the tenant's first notarization of the digest (one row of each shard's index
    is read, however many there are): with several shards, the earliest (`_earliest`); with
    `?all=true`, a page of every notarization,
    earliest first in each shard, shard after shard: `{"receipts": [...], "next": <cursor> |
    null}`, at most `limit` (default 100, at most 1,000) after `cursor` (the `next` of the page
    before)."""
    tenant = await tenant_of(request)
    raw = request.match_info["digest"]
    try:
        digest = parse_digest(raw)
    except ValueError as e:
        raise BadRequest(str(e), kind="invalid-digest") from e
    views = _searched(await request.app[VIEWS].all())
    if request.query.get("all") in ("1", "true"):
        return await _every_receipt(request, views, tenant, digest)
    founds = await asyncio.gather(
        *(_first_row(v, tenant, digest) for v in views), return_exceptions=len(views) > 1
    )
    down = [(v, e) for v, e in zip(views, founds, strict=True) if isinstance(e, BaseException)]
    for _, error in down:
        if not (isinstance(error, NotarError) and error.status == 503):
            raise error  # not "unavailable for now": the request's own fault, or a bug
    hits = [(v, rows[0]) for v, rows in zip(views, founds, strict=True) if isinstance(rows, list) and rows]
    if not hits:
        if down:
            raise down[0][1]  # it may be in a shard that did not answer: not a 404
        raise NotFoundError(f"this tenant has not notarized {digest}{await _explain(views)}")
    earliest = await _earliest(tenant, digest, hits)
    headers = {UNAVAILABLE_HEADER: ", ".join(v.origin for v, _ in down)} if down else {}
    return web.Response(body=earliest.to_json(), content_type="application/json", headers=headers)


async def _first_row(view: View, tenant: str, digest: Digest) -> list[Found]:
    return await view.looked_up().lookup(tenant, digest, limit=1)


async def _earliest(tenant: str, digest: Digest, hits: Sequence[tuple[View, Found]]) -> Receipt:
    """The receipt of the earliest of `hits`, each shard's first notarization: by the time the
    clock signed its batch's checkpoint (`Found.signed_at`), then by shard id; only its receipt is
    made. A hit without that time (a batch sequenced before anchors kept it) is placed by the
    time of the checkpoint its receipt is issued against instead, the shard's latest or its best
    anchored: later than its batch's, so such a hit may lose to a later notarization elsewhere."""
    untimed = [k for k, (_, found) in enumerate(hits) if found.signed_at is None]
    made = await asyncio.gather(*(_receipts(hits[k][0], tenant, digest, [hits[k][1]]) for k in untimed))
    receipts = {k: one[0] for k, one in zip(untimed, made, strict=True)}

    def order(k: int) -> tuple[int, int]:
        view, found = hits[k]
        signed = found.signed_at
        return (clock_time(receipts[k].checkpoint, view.origin) if signed is None else signed, view.shard.id)

    best = min(range(len(hits)), key=order)
    if best not in receipts:
        receipts[best] = (await _receipts(hits[best][0], tenant, digest, [hits[best][1]]))[0]
    return receipts[best]


async def _explain(views: Sequence[View]) -> str:
    return "".join([await view.lost.explain() for view in views])


async def _every_receipt(
    request: web.Request, views: Sequence[View], tenant: str, digest: Digest
) -> web.Response:
    """A page of `?all=true`: shard after shard, each shard's earliest first. The cursor is the
    last index given (`<shard>:<index>` past shard 0)."""
    limit, (first_shard, after) = _page(request)
    chosen: list[tuple[View, list[Found]]] = []
    taken, more = 0, False
    for view in views:
        if view.shard.id < first_shard:
            continue
        start = after if view.shard.id == first_shard else None
        found = await view.looked_up().lookup(tenant, digest, limit=limit - taken + 1, after=start)
        if taken + len(found) > limit:
            found, more = found[: limit - taken], True
        if found:
            chosen.append((view, found))
            taken += len(found)
        if more:
            break
    if not chosen:
        if after is not None or first_shard > 0:
            return web.Response(body=b'{"receipts":[],"next":null}', content_type="application/json")
        raise NotFoundError(f"this tenant has not notarized {digest}{await _explain(views)}")
    pages = await asyncio.gather(*(_receipts(view, tenant, digest, found) for view, found in chosen))
    last_view, last = chosen[-1][0], chosen[-1][1][-1].index
    cursor = (str(last) if last_view.shard.id == 0 else f"{last_view.shard.id}:{last}") if more else None
    body = b'{"receipts":[' + b",".join(r.to_json() for page in pages for r in page) + b'],"next":'
    return web.Response(body=body + orjson.dumps(cursor) + b"}", content_type="application/json")


def _page(request: web.Request) -> tuple[int, tuple[int, int | None]]:
    """(limit, (shard, index after which the page starts)) of `?all=true&limit=&cursor=`."""
    limit = _int(request, "limit") if "limit" in request.query else PAGE_SIZE
    if not 1 <= limit <= MAX_RECEIPTS:
        raise BadRequest(f"'limit' must be from 1 to {MAX_RECEIPTS}", kind="invalid-parameter")
    cursor = request.query.get("cursor")
    if cursor is None:
        return limit, (0, None)
    if ":" not in cursor:
        return limit, (0, _int(request, "cursor"))
    shard, _, index = cursor.partition(":")
    if not (_decimal(shard) and _decimal(index)):
        raise BadRequest(
            "query parameter 'cursor' must be the 'next' of the page before", kind="invalid-parameter"
        )
    return limit, (int(shard) if shard else 0, int(index))


def _decimal(raw: str) -> bool:
    return raw.isdigit() and not (len(raw) > 1 and raw[0] == "0") and len(raw) <= 19


async def delete_receipt(request: web.Request) -> web.Response:
    """Erasure: the service forgets every notarization of the digest by the caller's tenant."""
    tenant = await tenant_of(request)
    try:
        digest = parse_digest(request.match_info["digest"])
    except ValueError as e:
        raise BadRequest(str(e), kind="invalid-digest") from e
    views = _searched(await request.app[VIEWS].all())
    erased = await asyncio.gather(*(v.looked_up().forget(tenant, digest) for v in views))
    if not sum(erased):
        raise NotFoundError(f"this tenant has no notarization of {digest} to erase")
    return web.Response(status=204)


async def get_inclusion(request: web.Request) -> web.Response:
    index, size = _int(request, "index"), _int(request, "size")
    if index >= size:
        raise BadRequest(f"index {index} is not below size {size}", kind="invalid-parameter")
    view = await request.app[VIEWS].of_origin(request.query.get("origin"))
    proof = await view.reader.inclusion_proof(index, size)
    return _json({"index": index, "size": size, "proof": [h.hex() for h in proof]}, cache=IMMUTABLE)


async def get_consistency(request: web.Request) -> web.Response:
    first, second = _int(request, "from"), _int(request, "to")
    if first > second:
        raise BadRequest(f"'from' {first} is larger than 'to' {second}", kind="invalid-parameter")
    view = await request.app[VIEWS].of_origin(request.query.get("origin"))
    proof = await view.reader.consistency_proof(first, second)
    return _json({"from": first, "to": second, "proof": [h.hex() for h in proof]}, cache=IMMUTABLE)


async def get_anchors(request: web.Request) -> web.Response:
    """`?origin=O&size=N` (public, SPEC §6): the anchored or witnessed checkpoint of log O that
    covers its checkpoint of size N — of size N or more, the one with the most anchor kinds and
    witnesses' cosignatures, the earliest of those (``Upgrades.best_for``) — as `{"origin", "size",
    "checkpoint", "anchors"}`: with it, an inclusion proof and a consistency proof, anyone holding a
    receipt of O of size N upgrades it, with no API key and after the tenant's erasure too. 404
    while no anchored or witnessed checkpoint covers N."""
    origin = request.query.get("origin")
    if origin is None:
        raise BadRequest("query parameter 'origin' is required", kind="invalid-parameter")
    size = _int(request, "size")
    view = await request.app[VIEWS].of_origin(origin)
    found = await view.anchored.best_for(size - 1)  # best_for takes an entry's index
    if found is None:
        raise NotFoundError(f"no anchored checkpoint of {origin} covers tree size {size} yet")
    note, records = found
    anchored = parse_checkpoint(parse_note(note).text, origin=origin).size
    body = {"origin": origin, "size": anchored, "checkpoint": note, "anchors": records}
    return _json(body, cache="public, max-age=10")  # a later kind may still join it


async def get_keys(request: web.Request) -> web.Response:
    """The keys document as the anchor wrote it (services.published.trust, SPEC §6); with several
    shards, theirs merged in shard order."""
    return _json(await _keys(request.app[VIEWS]), cache="public, max-age=300")


async def _keys(views: Views) -> dict[str, Any]:
    """The keys document; with several shards, `introductions` lists each later shard's
    introduction by shard 0's log key (merkle.introduction) that is written yet."""
    shown = await views.all()
    documents = await asyncio.gather(*(v.reader.keys() for v in shown))
    try:
        merged = merge_documents(documents, [v.shard.state == "frozen" for v in shown])
        if len(shown) > 1:
            introductions = await asyncio.gather(*(views.introduction(v) for v in shown))
            merged["introductions"] = [i for i in introductions if i is not None]
        return merged
    except (KeyError, TypeError, ValueError) as e:
        raise StorageError(f"a published keys document is unusable: {e}", key=layout.keys_key()) from e


async def get_tsa_ca(request: web.Request) -> web.Response:
    """The TSA CA certificates this server checks RFC 3161 anchors against (TSA_CA_FILE), as PEM,
    for the web verifier and anyone who chooses to trust this server's word on its TSA."""
    cas: list[x509.Certificate] = request.app[TSA_CAS]
    if not cas:
        raise NotFoundError("this server names no TSA CA (TSA_CA_FILE is not set)")
    return web.Response(
        body=b"".join(c.public_bytes(Encoding.PEM) for c in cas),
        content_type="application/pem-certificate-chain",
        headers={"Cache-Control": "public, max-age=300"},
    )


async def _log_view(request: web.Request) -> View:
    """The shard of a `/log/…` route: shard 0 for `/log/`, shard i for `/log/<i>/`."""
    shard = request.match_info.get("shard")
    views = request.app[VIEWS]
    return await (views.first() if shard is None else views.of_id(int(shard)))


async def get_checkpoint(request: web.Request) -> web.StreamResponse:
    return await LogFiles.checkpoint(request, (await _log_view(request)).reader)


async def get_tile(request: web.Request) -> web.StreamResponse:
    """A tile or entry bundle (services/verify/static.py): from memory when held, found by the
    request's path alone (`/log/<i>/tile/…` is the store key `log/<i>/tile/…`)."""
    files = request.app[LOG_FILES]
    held = files.cache.get(request.path[1:])
    if held is not None:
        return answer(request, held)
    path = "tile/" + request.match_info["path"]
    try:
        tid = parse_tile_path(path)
    except ValueError as e:
        raise NotFoundError(f"no such log resource: {path[:200]}") from e
    view = await _log_view(request)
    return await files.tile(request, view.reader, view.shard.prefix + tid.path, tid)


def held_tile(app: web.Application) -> EarlyAnswer:
    """`notar serve`'s answer, before routing and the middlewares, to a GET of a tile or bundle
    held in memory (services/common/http_server.py): they would cost more than the answer. It is
    counted as its route's (`Telemetry.count`); anything else goes on to the routes."""
    tile_route, shard_route = "/log/tile/{path}", "/log/{shard}/tile/{path}"

    def early(request: web.Request) -> web.StreamResponse | None:
        path = request.path
        if not path.startswith("/log/") or request.method != "GET":
            return None
        files = app.get(LOG_FILES)
        held = None if files is None else files.cache.get(path[1:])
        if held is None:
            return None
        route = tile_route if path.startswith("/log/tile/") else shard_route
        request[STATIC_ROUTE] = route
        response = answer(request, held)
        telemetry = app.get(TELEMETRY)
        if telemetry is not None:
            telemetry.count(route, "GET", response.status)
        return response

    return early


async def post_verify(request: web.Request) -> web.Response:
    """`{"receipt": …, "digest": …}` → `{"valid", "checks": [{name, status, ok, detail}],
    "unchecked": [name]}` under the server's own published keys (SPEC §6), worked out in the
    verify pool (services/verify/pool.py: 503 when it is full). A malformed receipt (a v1 one too)
    is a failed `format` check; only a body that is not a JSON object naming a receipt, or that
    names a member twice anywhere, is a 400."""
    body = await read_json(request, limit=MAX_VERIFY_BODY, unique_names=True)
    if not isinstance(body, dict) or "receipt" not in body:
        raise BadRequest('expected {"receipt": {…}, "digest": "blake3:…"}', kind="invalid-request")
    digest = body.get("digest")
    if digest is not None and not isinstance(digest, str):
        raise BadRequest('"digest" must be a string', kind="invalid-request")
    trusted = await _trusted(request.app[VIEWS])
    return _json(await request.app[POOL].verify(body["receipt"], trusted=trusted, digest=digest))


def _verify_refusal(app: web.Application) -> PushbackError | None:
    pool = app.get(POOL)
    return None if pool is None else pool.refusal()


async def _trusted(views: Views) -> Trusted:
    """What the deployment's /v1/keys document says to trust: its policy, each key in its period
    (checked here once per document: the pool's workers build the same `Trust`)."""
    try:
        policy, rotations = document_policy(await _keys(views))
        trusted = Trusted(policy=policy, rotations=rotations)
        trust_of(trusted)
        return trusted
    except ValueError as e:
        raise StorageError(f"the published keys document is unusable: {e}", key=layout.keys_key()) from e


def _tsa_cas(path: Path | None) -> list[x509.Certificate]:
    """The trust anchors RFC 3161 anchors are checked against by POST /v1/verify (TSA_CA_FILE)."""
    if path is None:
        return []
    try:
        return load_certificates(path.read_bytes())
    except (OSError, ValueError) as e:
        raise ConfigError(f"TSA_CA_FILE {path}: {e}", setting="TSA_CA_FILE") from e


def verify_context(
    config: NotarConfig, given: ShardAnchor | None, given_shards: Shards | None
) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        shards, lookup = given_shards, given
        app[TSA_CAS] = cas = _tsa_cas(config.chains.tsa_ca_file.value)
        app[POOL] = VerifyPool(
            workers=config.http.verify_workers, queue=config.http.verify_queue, tsa_cas=cas
        )
        client: AnchorClient | TableShards | None = None
        if shards is None and config.shards.count > 1:  # split roles: the shard table's anchors
            shards = client = TableShards(app[STORE])
        elif shards is None:
            if lookup is None:
                lookup = client = AnchorClient(config.http.anchor_url)
            links = (ShardLink(Shard(0, config.sequencer.origin), lookup),)
            shards = FixedShards(lambda: links)
        app[VIEWS] = Views(app[STORE], shards)
        app[LOG_FILES] = LogFiles(app[STORE], ImmutableCache(config.http.tile_cache_mb * 1024 * 1024))
        yield
        app[POOL].close()
        if client is not None:
            await client.close()

    return ctx


def setup(
    app: web.Application,
    config: NotarConfig,
    *,
    lookup: ShardAnchor | None = None,
    shards: Shards | None = None,
) -> None:
    """Add the verify routes to `app`. The shards come from `shards` (one process), else with
    SHARDS > 1 from the shard table; with one shard, tenant look-ups go to `lookup`, else to
    ANCHOR_URL."""
    app.cleanup_ctx.append(verify_context(config, lookup, shards))
    app.router.add_get("/v1/receipts/{digest}", get_receipt)
    app.router.add_delete("/v1/receipts/{digest}", delete_receipt)
    app.router.add_get("/v1/proofs/inclusion", get_inclusion)
    app.router.add_get("/v1/proofs/consistency", get_consistency)
    app.router.add_get("/v1/keys", get_keys)
    app.router.add_get("/v1/anchors", get_anchors)
    app.router.add_get("/v1/tsa-ca", get_tsa_ca)
    app.router.add_post("/v1/verify", post_verify)
    add_shedding(app, [("POST", "/v1/verify")], _verify_refusal)
    early = app.get(EARLY_ANSWERS)
    if early is None:
        early = app[EARLY_ANSWERS] = []
    early.append(held_tile(app))
    app.router.add_get("/log/checkpoint", get_checkpoint)
    app.router.add_get("/log/tile/{path:.+}", get_tile)
    app.router.add_get(f"/log/{{shard:{SHARD_ID}}}/checkpoint", get_checkpoint)
    app.router.add_get(f"/log/{{shard:{SHARD_ID}}}/tile/{{path:.+}}", get_tile)
    app.router.add_get("/verify", verify_page(explorer=config.chains.evm_explorer_url))


def create_app(config: NotarConfig, *, env: Mapping[str, str] | None = None) -> web.Application:
    app = new_app(config, env, readiness=[])
    setup(app, config)
    return app
