"""The verify service: receipts (upgraded when anchored), proofs, keys, the published log, and
receipt verification. Stateless: everything comes from the object store and the anchor's index."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

import orjson
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from merkle.anchors.rfc3161 import load_certificates
from merkle.checkpoint import parse_checkpoint
from merkle.digests import Digest, parse_digest
from merkle.note import parse_note
from merkle.receipt import Receipt
from merkle.tiles import ENTRIES, parse_tile_path
from services.common.components import NotarConfig
from services.common.problems import read_json
from services.common.resources import STORE, new_app, tenant_of
from services.common.shedding import add_shedding
from services.internal.client import AnchorClient
from services.model import Lookup
from services.published import layout
from services.published.anchors import AnchorStore
from services.published.reader import LogReader
from services.published.restores import LostSalts
from services.published.trust import document_policy
from services.published.witnessed import Upgrades, WitnessedStore
from services.verify.page import verify_page
from services.verify.pool import Trusted, VerifyPool, trust_of
from storage.errors import BadRequest, ConfigError, NotFoundError, PushbackError, StorageError


class AnchoredCheckpoints(Protocol):
    async def best_for(self, index: int) -> tuple[str, list[dict[str, Any]]] | None:
        """The anchored checkpoint containing entry `index` with the most anchor kinds, the
        earliest of those: (note, anchor records)."""
        ...


READER = web.AppKey("reader", LogReader)
LOOKUP = web.AppKey("lookup", Lookup)
LOST = web.AppKey("lost", LostSalts)
ANCHORED = web.AppKey("anchored", AnchoredCheckpoints)
ORIGIN = web.AppKey("verify_origin", str)
TSA_CAS = web.AppKey("tsa_cas", list[x509.Certificate])
POOL = web.AppKey("verify_pool", VerifyPool)
MAX_VERIFY_BODY = 1024 * 1024
MAX_RECEIPTS = 1000  # ?all=true lists at most this many a page (the earliest first)
PAGE_SIZE = 100  # ... and this many when the request does not say
IMMUTABLE = layout.IMMUTABLE


def _json(body: Any, *, cache: str | None = None) -> web.Response:
    headers = {"Cache-Control": cache} if cache else None
    return web.Response(body=orjson.dumps(body), content_type="application/json", headers=headers)


def _int(request: web.Request, name: str) -> int:
    raw = request.query.get(name)
    if raw is None or not raw.isdigit() or (len(raw) > 1 and raw[0] == "0") or len(raw) > 19:
        raise BadRequest(
            f"query parameter {name!r} must be a non-negative decimal integer", kind="invalid-parameter"
        )
    return int(raw)


async def _receipt(
    app: web.Application, tenant: str, digest: Digest, index: int, salt: bytes, note: str
) -> Receipt:
    """The receipt of `tenant`'s notarization of `digest` at `index` with `salt`, against the
    latest checkpoint `note`, or against the anchored checkpoint containing it with the most kinds
    (``AnchorStore.best_for``), with that checkpoint's anchors."""
    records: list[dict[str, Any]] = []
    anchored = await app[ANCHORED].best_for(index)
    if anchored is not None:
        note, records = anchored
    cp = parse_checkpoint(parse_note(note).text, origin=app[ORIGIN])
    if index >= cp.size:
        raise PushbackError(f"entry {index} is not published yet", retry_after=1)
    proof = await app[READER].inclusion_proof(index, cp.size)
    return Receipt.build(
        digest=digest,
        salt=salt,
        subject=tenant,
        origin=app[ORIGIN],
        index=index,
        tree_size=cp.size,
        inclusion=proof,
        checkpoint=note,
        anchors=records,
    )


async def get_receipt(request: web.Request) -> web.Response:
    """The receipt of the tenant's first notarization of the digest (one row of the index is
    read, however many there are); with `?all=true`, a page of every notarization, earliest first:
    `{"receipts": [...], "next": <cursor> | null}`, at most `limit` (default 100, at most 1,000)
    after `cursor` (the `next` of the page before)."""
    tenant = await tenant_of(request)
    raw = request.match_info["digest"]
    try:
        digest = parse_digest(raw)
    except ValueError as e:
        raise BadRequest(str(e), kind="invalid-digest") from e
    every = request.query.get("all") in ("1", "true")
    limit, after = (_page(request) if every else (1, None))
    found = await request.app[LOOKUP].lookup(tenant, digest, limit=limit + 1 if every else 1, after=after)
    if not found:
        if after is not None:
            return web.Response(body=b'{"receipts":[],"next":null}', content_type="application/json")
        raise NotFoundError(f"this tenant has not notarized {digest}{await request.app[LOST].explain()}")
    chosen = found[:limit]
    note, _ = await request.app[READER].checkpoint_covering(max(i for i, _ in chosen))
    receipts = await asyncio.gather(*(_receipt(request.app, tenant, digest, i, s, note) for i, s in chosen))
    if not every:
        return web.Response(body=receipts[0].to_json(), content_type="application/json")
    cursor = orjson.dumps(str(chosen[-1][0]) if len(found) > limit else None)
    body = b'{"receipts":[' + b",".join(r.to_json() for r in receipts) + b'],"next":' + cursor + b"}"
    return web.Response(body=body, content_type="application/json")


def _page(request: web.Request) -> tuple[int, int | None]:
    """(limit, index after which the page starts) of `?all=true&limit=&cursor=`."""
    limit = _int(request, "limit") if "limit" in request.query else PAGE_SIZE
    if not 1 <= limit <= MAX_RECEIPTS:
        raise BadRequest(f"'limit' must be from 1 to {MAX_RECEIPTS}", kind="invalid-parameter")
    return limit, _int(request, "cursor") if "cursor" in request.query else None


async def delete_receipt(request: web.Request) -> web.Response:
    """Erasure: the service forgets every notarization of the digest by the caller's tenant."""
    tenant = await tenant_of(request)
    try:
        digest = parse_digest(request.match_info["digest"])
    except ValueError as e:
        raise BadRequest(str(e), kind="invalid-digest") from e
    if not await request.app[LOOKUP].forget(tenant, digest):
        raise NotFoundError(f"this tenant has no notarization of {digest} to erase")
    return web.Response(status=204)


async def get_inclusion(request: web.Request) -> web.Response:
    index, size = _int(request, "index"), _int(request, "size")
    if index >= size:
        raise BadRequest(f"index {index} is not below size {size}", kind="invalid-parameter")
    proof = await request.app[READER].inclusion_proof(index, size)
    return _json({"index": index, "size": size, "proof": [h.hex() for h in proof]}, cache=IMMUTABLE)


async def get_consistency(request: web.Request) -> web.Response:
    first, second = _int(request, "from"), _int(request, "to")
    if first > second:
        raise BadRequest(f"'from' {first} is larger than 'to' {second}", kind="invalid-parameter")
    proof = await request.app[READER].consistency_proof(first, second)
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
    if origin != request.app[ORIGIN]:
        raise NotFoundError(f"this service has no log {origin[:200]!r}")
    found = await request.app[ANCHORED].best_for(size - 1)  # best_for takes an entry's index
    if found is None:
        raise NotFoundError(f"no anchored checkpoint of {origin} covers tree size {size} yet")
    note, records = found
    anchored = parse_checkpoint(parse_note(note).text, origin=origin).size
    body = {"origin": origin, "size": anchored, "checkpoint": note, "anchors": records}
    return _json(body, cache="public, max-age=10")  # a later kind may still join it


async def get_keys(request: web.Request) -> web.Response:
    """The keys document as the anchor wrote it (services.published.trust, SPEC §6)."""
    return _json(await request.app[READER].keys(), cache="public, max-age=300")


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


async def get_checkpoint(request: web.Request) -> web.Response:
    data = await request.app[READER].raw(layout.CHECKPOINT)
    return web.Response(
        body=data,
        content_type="text/plain",
        charset="utf-8",
        headers={"Cache-Control": layout.CHECKPOINT_CACHE},
    )


async def get_tile(request: web.Request) -> web.Response:
    path = "tile/" + request.match_info["path"]
    try:
        tid = parse_tile_path(path)
    except ValueError as e:
        raise NotFoundError(f"no such log resource: {path[:200]}") from e
    data = await request.app[READER].tile(tid)
    response = web.Response(
        body=data, content_type="application/octet-stream", headers={"Cache-Control": IMMUTABLE}
    )
    if tid.level == ENTRIES:
        response.enable_compression()
    return response


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
    trusted = await _trusted(request.app[READER])
    return _json(await request.app[POOL].verify(body["receipt"], trusted=trusted, digest=digest))


def _verify_refusal(app: web.Application) -> PushbackError | None:
    pool = app.get(POOL)
    return None if pool is None else pool.refusal()


async def _trusted(reader: LogReader) -> Trusted:
    """What the deployment's /v1/keys document says to trust: its policy, each key in its period
    (checked here once per document: the pool's workers build the same `Trust`)."""
    try:
        policy, rotations = document_policy(await reader.keys())
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
    config: NotarConfig, lookup: Lookup | None
) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        origin = config.sequencer.origin
        app[ORIGIN] = origin
        app[READER] = LogReader(app[STORE], origin=origin)
        app[ANCHORED] = Upgrades(AnchorStore(app[STORE]), WitnessedStore(app[STORE]))
        app[LOST] = LostSalts(app[STORE])
        app[TSA_CAS] = cas = _tsa_cas(config.chains.tsa_ca_file.value)
        app[POOL] = VerifyPool(
            workers=config.http.verify_workers, queue=config.http.verify_queue, tsa_cas=cas
        )
        client = None
        if lookup is None:
            client = AnchorClient(config.http.anchor_url)
            app[LOOKUP] = client
        else:
            app[LOOKUP] = lookup
        yield
        app[POOL].close()
        if client is not None:
            await client.close()

    return ctx


def setup(app: web.Application, config: NotarConfig, *, lookup: Lookup | None = None) -> None:
    """Add the verify routes to `app`; without `lookup`, tenant lookups go to ANCHOR_URL."""
    app.cleanup_ctx.append(verify_context(config, lookup))
    app.router.add_get("/v1/receipts/{digest}", get_receipt)
    app.router.add_delete("/v1/receipts/{digest}", delete_receipt)
    app.router.add_get("/v1/proofs/inclusion", get_inclusion)
    app.router.add_get("/v1/proofs/consistency", get_consistency)
    app.router.add_get("/v1/keys", get_keys)
    app.router.add_get("/v1/anchors", get_anchors)
    app.router.add_get("/v1/tsa-ca", get_tsa_ca)
    app.router.add_post("/v1/verify", post_verify)
    add_shedding(app, [("POST", "/v1/verify")], _verify_refusal)
    app.router.add_get("/log/checkpoint", get_checkpoint)
    app.router.add_get("/log/tile/{path:.+}", get_tile)
    app.router.add_get("/verify", verify_page(explorer=config.chains.evm_explorer_url))


def create_app(config: NotarConfig, *, env: Mapping[str, str] | None = None) -> web.Application:
    app = new_app(config, env, readiness=[])
    setup(app, config)
    return app
