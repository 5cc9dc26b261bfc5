"""The async Python client of the notar v1 API (SPEC §6), used by the CLI and the load tests.

    async with NotarClient("http://127.0.0.1:8080", api_key) as notar:
        receipts = await notar.notarize(["blake3:…"])      # merkle.Receipt, in order
        keys = trusted_keys(await notar.keys())             # every key the deployment lists

`notarize` asks for the compact batch answer (merkle.compact) and rebuilds the receipts from it,
each byte for byte the one the default answer carries; a compact answer that does not hold (a
node, index, salt or checkpoint that does not fit the request) raises ValueError naming what.
Receipts come back as `merkle.Receipt` (read strictly: a malformed one raises ValueError), the
keys as the SPEC §6 document, and `trusted_keys` gives its verifier keys. A document comes back
hashed as it arrives: the last piece is given only once the whole is the digest asked for
(`DocumentMismatch` otherwise). Problems come back as
`ApiError` (status, stable type, detail); 503 pushback is retried after its Retry-After, a bounded
number of times.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, overload

import aiohttp
import blake3
import orjson

from merkle.compact import MEDIA_TYPE as COMPACT
from merkle.compact import expand
from merkle.digests import parse_digest
from merkle.receipt import Receipt
from services.published.trust import trusted_keys
from services.tile_proofs import TileLog, TileLogError

__all__ = ["MAX_DIGESTS", "ApiError", "DocumentMismatch", "NotarClient", "Receipts", "Upload", "trusted_keys"]
MAX_DIGESTS = 10_000


class ApiError(Exception):
    def __init__(self, status: int, kind: str, detail: str) -> None:
        super().__init__(f"{status} {kind}: {detail}")
        self.status, self.kind, self.detail = status, kind, detail


class DocumentMismatch(Exception):
    """The bytes a server sent for a document are not the document asked for: discard them."""


class Receipts(Sequence[Receipt]):
    """The receipts of answers, in order: each read (`Receipt.from_obj`, strict) when first
    used, so that 10,000 of them cost one JSON parse until the caller looks at them."""

    def __init__(self, items: list[Any]) -> None:
        """`items`: receipts parsed as JSON values, or `Receipt`s already made."""
        self._items = items
        self._read: dict[int, Receipt] = {}

    def __len__(self) -> int:
        return len(self._items)

    @overload
    def __getitem__(self, i: int) -> Receipt: ...
    @overload
    def __getitem__(self, i: slice) -> list[Receipt]: ...
    def __getitem__(self, i: int | slice) -> Receipt | list[Receipt]:
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self._items)))]
        k = range(len(self._items))[i]
        found = self._read.get(k)
        if found is None:
            item = self._items[k]
            found = self._read[k] = item if isinstance(item, Receipt) else Receipt.from_obj(item)
        return found


@dataclass(frozen=True)
class Upload:
    """What `PUT /v1/documents` answers: the stored document's summary and its receipt."""

    document: dict[str, Any]
    receipt: Receipt


class NotarClient:
    """An async client of one notar deployment at `url`, as the tenant of `api_key` (the reads
    of `/v1/keys` and proofs need none). Use it as an async context manager, or `close()` it;
    pass `session` to share an aiohttp session (it is then not closed). A 503 with Retry-After
    (pushback) is retried `retries` times, except uploads (their body is consumed); other
    problems raise `ApiError`. Proofs are computed from the log's tiles at `tiles` (default
    `url/log/`; a bucket or CDN serving the log's files is as good) when `/v1/proofs` cannot be
    reached (services/tile_proofs.py).

        async with NotarClient("http://127.0.0.1:8080", api_key) as notar:
            receipts = await notar.notarize(["blake3:…"])
    """

    def __init__(
        self,
        url: str,
        api_key: str | None = None,
        *,
        session: aiohttp.ClientSession | None = None,
        retries: int = 5,
        timeout: float = 120.0,
        connections: int = 64,
        tiles: str | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.tiles = tiles or self.url + "/log/"
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._own = session is None
        self._session = session or aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=timeout, sock_connect=10),
            connector=aiohttp.TCPConnector(limit=connections),
        )
        self._retries = retries

    async def __aenter__(self) -> NotarClient:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._own:
            await self._session.close()

    async def _request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        data: Any = None,
        params: dict[str, str] | None = None,
        parse: bool = True,
        accept: str | None = None,
    ) -> Any:
        headers = dict(self._headers)
        if accept is not None:
            headers["Accept"] = accept
        if body is not None:
            headers["Content-Type"] = "application/json"
        for attempt in range(self._retries + 1):
            async with self._session.request(
                method,
                self.url + path,
                data=body if body is not None else data,
                params=params,
                headers=headers,
            ) as r:
                raw = await r.read()
                if r.status == 503 and attempt < self._retries and data is None:
                    await asyncio.sleep(min(30.0, float(r.headers.get("Retry-After", "1"))))
                    continue
                if r.status >= 400:
                    raise _problem(r.status, raw)
                return orjson.loads(raw) if parse and raw and r.content_type.endswith("json") else raw
        raise AssertionError("unreachable")

    async def notarize(self, digests: Sequence[str], *, compact: bool = True) -> Receipts:
        """Receipts for `digests` (any number: sent 10,000 per request), in order. With
        `compact` (the default) the server is asked for the compact answer and the receipts are
        rebuilt from it (ValueError when it does not hold); a server that answers the default
        form instead is read as such. `compact=False` asks for the default answer."""
        out: list[Any] = []
        for i in range(0, len(digests), MAX_DIGESTS):
            part = list(digests[i : i + MAX_DIGESTS])
            raw = await self.post_digests(part, compact=compact)
            if raw.startswith(b'{"receipts":'):
                out += orjson.loads(raw)["receipts"]
            else:
                out += expand(raw, part)
        return Receipts(out)

    async def post_digests(self, digests: Sequence[str], *, compact: bool = True) -> bytes:
        """`POST /v1/digests` of at most 10,000 digests: the answer's bytes as the server sent
        them, asked for in the compact form (`merkle.compact.expand` reads it) or not."""
        body = orjson.dumps({"digests": list(digests)})
        raw: bytes = await self._request(
            "POST", "/v1/digests", body=body, parse=False, accept=COMPACT if compact else None
        )
        return raw

    async def upload(self, chunks: AsyncIterable[bytes]) -> Upload:
        """Store and notarize a document streamed from `chunks`."""
        answer = await self._request("PUT", "/v1/documents", data=chunks)
        return Upload(dict(answer["document"]), Receipt.from_obj(answer["receipt"]))

    async def document(self, digest: str) -> AsyncIterator[bytes]:
        """The document's bytes, streamed and hashed on the way; the last piece is yielded only
        once the whole has `digest` (ValueError for a malformed one), else DocumentMismatch is
        raised instead: a consumer that stops at an error never holds the whole of other bytes.
        A connection the server cuts (it found its store corrupted) raises aiohttp's
        ClientPayloadError."""
        want = parse_digest(digest)
        hasher: Any = hashlib.sha256() if want.algorithm == "sha256" else blake3.blake3()
        async with self._session.get(f"{self.url}/v1/documents/{want}", headers=self._headers) as r:
            if r.status >= 400:
                raise _problem(r.status, await r.read())
            held: bytes | None = None
            async for chunk in r.content.iter_chunked(1 << 20):
                hasher.update(chunk)
                if held is not None:
                    yield held
                held = chunk
        if hasher.digest() != want.value:
            raise DocumentMismatch(f"the server sent bytes that are not the document {want}")
        if held is not None:
            yield held

    async def stored(self, digest: str) -> bool:
        """Whether the server stores the caller's document `digest` (HEAD /v1/documents/{digest})."""
        async with self._session.head(f"{self.url}/v1/documents/{digest}", headers=self._headers) as r:
            if r.status == 404:
                return False
            if r.status >= 400:
                raise _problem(r.status, await r.read())
            return True

    async def receipt(self, digest: str) -> Receipt:
        """The receipt of the caller's first notarization of `digest`, upgraded once anchored."""
        return Receipt.from_json(await self._request("GET", f"/v1/receipts/{digest}", parse=False))

    async def receipts(self, digest: str, *, page: int = 1000) -> list[Receipt]:
        """Every notarization of `digest` by the caller, earliest first (`page` a request)."""
        out: list[Receipt] = []
        params = {"all": "true", "limit": str(page)}
        while True:
            answer = await self._request("GET", f"/v1/receipts/{digest}", params=params)
            out += [Receipt.from_obj(r) for r in answer["receipts"]]
            if answer.get("next") is None:
                return out
            params["cursor"] = str(answer["next"])

    async def keys(self) -> dict[str, Any]:
        """The deployment's keys document (SPEC §6): `trusted_keys` of it gives its verifier keys."""
        result: dict[str, Any] = await self._request("GET", "/v1/keys")
        return result

    async def anchors(self, origin: str, size: int) -> dict[str, Any] | None:
        """The anchored checkpoint covering the checkpoint of size `size` of log `origin`
        (`GET /v1/anchors`, no API key needed): `{"origin", "size", "checkpoint", "anchors"}`, or
        None while there is none."""
        try:
            answer: dict[str, Any] = await self._request(
                "GET", "/v1/anchors", params={"origin": origin, "size": str(size)}
            )
        except ApiError as e:
            if e.status == 404:
                return None
            raise
        return answer

    async def inclusion_proof(self, index: int, size: int, origin: str | None = None) -> list[str]:
        """The inclusion proof in the log `origin` (a shard's; default: the deployment's ORIGIN);
        from the log's tiles when /v1/proofs cannot be reached."""
        params = {"index": str(index), "size": str(size), **({"origin": origin} if origin else {})}
        return await self._proof("inclusion", params, lambda log: log.inclusion_proof(index, size, origin))

    async def consistency_proof(self, first: int, second: int, origin: str | None = None) -> list[str]:
        """The consistency proof in the log `origin` (a shard's; default: the deployment's
        ORIGIN); from the log's tiles when /v1/proofs cannot be reached."""
        params = {"from": str(first), "to": str(second), **({"origin": origin} if origin else {})}
        return await self._proof("consistency", params, lambda t: t.consistency_proof(first, second, origin))

    async def _proof(
        self, kind: str, params: dict[str, str], from_tiles: Callable[[TileLog], Awaitable[list[bytes]]]
    ) -> list[str]:
        try:
            answer = await self._request("GET", f"/v1/proofs/{kind}", params=params)
        except (ApiError, aiohttp.ClientConnectionError) as e:
            if not _unreachable(e):
                raise
            try:
                return [h.hex() for h in await from_tiles(TileLog(self._session, self.tiles))]
            except TileLogError as bad:
                kind = "not-found" if bad.status == 404 else "tiles-unusable"
                raise ApiError(bad.status or 502, kind, bad.detail) from bad
        return list(answer["proof"])

    async def verify(self, receipt: Receipt | Mapping[str, Any], digest: str | None = None) -> dict[str, Any]:
        """The server's verdict on `receipt` (POST /v1/verify)."""
        raw = receipt.to_json() if isinstance(receipt, Receipt) else orjson.dumps(receipt)
        tail = b',"digest":' + orjson.dumps(digest) if digest else b""
        body = b'{"receipt":' + raw + tail + b"}"
        result: dict[str, Any] = await self._request("POST", "/v1/verify", body=body)
        return result


def _unreachable(e: BaseException) -> bool:
    """Whether a proof route's failure means "not reachable here" (no answer, no such route, a
    server error) rather than a bad question (400)."""
    return not isinstance(e, ApiError) or e.status in (404, 405) or e.status >= 500


def _problem(status: int, raw: bytes) -> ApiError:
    try:
        p = orjson.loads(raw)
        return ApiError(status, str(p.get("type", "")).rpartition(":")[2], str(p.get("detail", "")))
    except (orjson.JSONDecodeError, AttributeError):
        return ApiError(status, "http-error", raw[:200].decode(errors="replace"))
