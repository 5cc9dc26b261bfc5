"""The SCITT routes (SPEC §12; draft-ietf-scitt-scrapi, docs/scitt.md), errors in RFC 9290 CBOR.

- ``POST /entries`` (``application/cose``, a tenant's API key): a signed statement the
  registration policy admits (services.scitt.policy) is registered as a type-0x03 entry; 201 with
  its COSE receipt when it is sequenced within ``SCITT_WAIT_MS``, else 303 with ``Location`` and
  ``Retry-After``. The same statement again gets its first receipt.
- ``GET /entries/{id}`` (public; ``id`` is the statement's SHA-256 as its entry holds it, 64 hex):
  200 with the receipt, 302 to itself with ``Retry-After`` while it is being sequenced (429 when
  polled again sooner than half that), 404 when unknown.
- ``GET /.well-known/scitt-keys`` and ``…/{kid}``: the log keys, current and past, as a COSE Key
  Set or one COSE key (services.published.scitt_keys).
"""

from __future__ import annotations

import re
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from merkle.scitt import TOO_LARGE, StatementError
from services.common.components import NotarConfig, ScittConfig
from services.common.issuers import IssuerRegistry
from services.common.problems import BadRequest, body_at_most
from services.common.resources import STORE, tenant_of
from services.common.shedding import add_shedding
from services.internal.client import AnchorClient
from services.model import Registrations
from services.published.reader import LogReader
from services.published.scitt_keys import cose_key, cose_key_set, parse_kid
from services.scitt.policy import admit
from services.scitt.problems import ScittProblem, concise, to_concise
from storage.errors import NotFoundError

COSE = "application/cose"
CBOR = "application/cbor"
RETRY_S = 1
_ID = re.compile("[0-9a-f]{64}")
_POLLS = 100_000  # pending entries whose last poll is remembered (for 429)


class Polls:
    """When each pending entry was last polled: one poll per half Retry-After, else 429."""

    def __init__(self, interval_s: float = RETRY_S / 2) -> None:
        self._interval = interval_s
        self._last: OrderedDict[str, float] = OrderedDict()

    def too_soon(self, entry_id: str) -> bool:
        now = time.monotonic()
        last = self._last.get(entry_id)
        self._last[entry_id] = now
        self._last.move_to_end(entry_id)
        while len(self._last) > _POLLS:
            self._last.popitem(last=False)
        return last is not None and now - last < self._interval


REGISTRATIONS = web.AppKey("registrations", Registrations)
ISSUERS = web.AppKey("issuers", IssuerRegistry)
KEYS_READER = web.AppKey("scitt_keys_reader", LogReader)
CONFIG = web.AppKey("scitt_config", ScittConfig)
POLLS = web.AppKey("scitt_polls", Polls)


def _location(entry: bytes) -> str:
    return f"/entries/{entry[1:].hex()}"


@concise
async def post_entries(request: web.Request) -> web.StreamResponse:
    tenant = await tenant_of(request)
    if request.content_type != COSE:
        raise ScittProblem(415, "Unsupported Media Type", f"POST /entries takes a signed statement as {COSE}")
    config = request.app[CONFIG]
    try:
        data = b"".join([chunk async for chunk in body_at_most(request, config.max_bytes)])
    except BadRequest as e:
        if e.status != 413:
            raise
        raise StatementError(TOO_LARGE, e.message) from None
    statement = await admit(data, tenant, request.app[ISSUERS], max_size=config.max_bytes)
    entry = statement.entry
    receipt = await request.app[REGISTRATIONS].register(entry, config.wait_s)
    headers = {"Location": _location(entry)}
    if receipt is None:
        headers["Retry-After"] = str(RETRY_S)
        return web.Response(status=303, headers=headers)
    return web.Response(status=201, body=receipt, content_type=COSE, headers=headers)


@concise
async def get_entry(request: web.Request) -> web.StreamResponse:
    entry_id = request.match_info["id"]
    if not _ID.fullmatch(entry_id):
        raise ScittProblem(
            400, "Invalid locator", "an entry ID is the statement's SHA-256 as its log entry holds it: 64 hex"
        )
    entry = bytes([0x03]) + bytes.fromhex(entry_id)
    receipt = await request.app[REGISTRATIONS].receipt(entry)
    headers = {"Location": _location(entry)}
    if receipt is None:
        if request.app[POLLS].too_soon(entry_id):
            raise ScittProblem(
                429,
                "Too Many Requests",
                f"poll a registration at most once per {RETRY_S / 2:g} s: wait Retry-After",
                retry_after=RETRY_S,
            )
        headers["Retry-After"] = str(RETRY_S)
        return web.Response(status=302, headers=headers)
    return web.Response(body=receipt, content_type=COSE, headers=headers)


def _unusable(e: Exception) -> ScittProblem:
    return ScittProblem(503, "Service Unavailable", f"the log's keys are not usable: {e}", retry_after=5)


async def _document(request: web.Request) -> object:
    try:
        return await request.app[KEYS_READER].keys()
    except (NotFoundError, ValueError) as e:
        raise _unusable(e) from e


@concise
async def get_keys(request: web.Request) -> web.StreamResponse:
    document = await _document(request)
    try:
        body = cose_key_set(document)
    except ValueError as e:
        raise _unusable(e) from e
    return web.Response(body=body, content_type=CBOR, headers={"Cache-Control": "public, max-age=300"})


@concise
async def get_key(request: web.Request) -> web.StreamResponse:
    no_such = ScittProblem(404, "No such key", "No key could be found for this kid value")
    try:
        kid = parse_kid(request.match_info["kid"])
    except ValueError:
        raise no_such from None
    document = await _document(request)
    try:
        body = cose_key(document, kid)
    except ValueError as e:
        raise _unusable(e) from e
    if body is None:
        raise no_such
    return web.Response(body=body, content_type=CBOR, headers={"Cache-Control": "public, max-age=300"})


def scitt_context(
    config: NotarConfig, registrations: Registrations | None
) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        app[ISSUERS] = IssuerRegistry(app[STORE], cache_s=float(config.http.key_cache_s))
        app[KEYS_READER] = LogReader(app[STORE], origin=config.sequencer.origin)
        client = None
        if registrations is None:
            client = AnchorClient(config.http.anchor_url)
            app[REGISTRATIONS] = client
        else:
            app[REGISTRATIONS] = registrations
        yield
        if client is not None:
            await client.close()

    return ctx


def setup(app: web.Application, config: NotarConfig, *, registrations: Registrations | None = None) -> None:
    """Add the SCITT routes to `app`; without `registrations`, they go to ANCHOR_URL over HTTP."""
    app[CONFIG] = config.scitt
    app[POLLS] = Polls()
    app.cleanup_ctx.append(scitt_context(config, registrations))
    add_shedding(app, [("POST", "/entries")], lambda a: a[REGISTRATIONS].refusal(), answer=to_concise)
    app.router.add_post("/entries", post_entries)
    app.router.add_get("/entries/{id}", get_entry)
    app.router.add_get("/.well-known/scitt-keys", get_keys)
    app.router.add_get("/.well-known/scitt-keys/{kid}", get_key)
