"""The async Python client of the notar v1 API (SPEC §6), used by the CLI and the load tests.

    async with NotarClient("http://127.0.0.1:8080", api_key) as notar:
        receipts = await notar.notarize(["blake3:…"])

Problems come back as `ApiError` (status, stable type, detail); 503 pushback is retried after its
Retry-After, a bounded number of times.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Sequence
from types import TracebackType
from typing import Any

import aiohttp
import orjson

MAX_DIGESTS = 10_000


class ApiError(Exception):
    def __init__(self, status: int, kind: str, detail: str) -> None:
        super().__init__(f"{status} {kind}: {detail}")
        self.status, self.kind, self.detail = status, kind, detail


class NotarClient:
    def __init__(
        self,
        url: str,
        api_key: str | None = None,
        *,
        session: aiohttp.ClientSession | None = None,
        retries: int = 5,
        timeout: float = 120.0,
        connections: int = 64,
    ) -> None:
        self.url = url.rstrip("/")
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
    ) -> Any:
        headers = dict(self._headers)
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
                return orjson.loads(raw) if raw and r.content_type.endswith("json") else raw
        raise AssertionError("unreachable")

    async def notarize(self, digests: Sequence[str], *, salt: bool = True) -> list[dict[str, Any]]:
        """Receipts for `digests` (any number: sent 10,000 per request), in order."""
        out: list[dict[str, Any]] = []
        for i in range(0, len(digests), MAX_DIGESTS):
            body = orjson.dumps({"digests": list(digests[i : i + MAX_DIGESTS]), "salt": salt})
            out += (await self._request("POST", "/v1/digests", body=body))["receipts"]
        return out

    async def upload(self, chunks: AsyncIterable[bytes]) -> dict[str, Any]:
        """Store and notarize a document streamed from `chunks`: {"document": …, "receipt": …}."""
        result: dict[str, Any] = await self._request("PUT", "/v1/documents", data=chunks)
        return result

    async def document(self, digest: str) -> AsyncIterator[bytes]:
        """The document's bytes, streamed."""
        async with self._session.get(f"{self.url}/v1/documents/{digest}", headers=self._headers) as r:
            if r.status >= 400:
                raise _problem(r.status, await r.read())
            async for chunk in r.content.iter_chunked(1 << 20):
                yield chunk

    async def receipt(self, digest: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._request("GET", f"/v1/receipts/{digest}")
        return result

    async def receipts(self, digest: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = (
            await self._request("GET", f"/v1/receipts/{digest}", params={"all": "true"})
        )["receipts"]
        return result

    async def keys(self) -> dict[str, Any]:
        result: dict[str, Any] = await self._request("GET", "/v1/keys")
        return result

    async def inclusion_proof(self, index: int, size: int) -> list[str]:
        answer = await self._request(
            "GET", "/v1/proofs/inclusion", params={"index": str(index), "size": str(size)}
        )
        return list(answer["proof"])

    async def consistency_proof(self, first: int, second: int) -> list[str]:
        answer = await self._request(
            "GET", "/v1/proofs/consistency", params={"from": str(first), "to": str(second)}
        )
        return list(answer["proof"])

    async def verify(self, receipt: Any, digest: str | None = None) -> dict[str, Any]:
        body = orjson.dumps({"receipt": receipt, **({"digest": digest} if digest else {})})
        result: dict[str, Any] = await self._request("POST", "/v1/verify", body=body)
        return result


def trusted_keys(doc: object) -> list[str]:
    """Every verifier key of a /v1/keys document (SPEC §6: `{"logs": [{"origin", "log", "clock",
    …}], "witnesses": [...], "policy": …}`): each log's log and clock keys, then the witnesses.
    ValueError when it is not of that shape."""
    logs = doc.get("logs") if isinstance(doc, dict) else None
    if not isinstance(logs, list) or not logs or not all(isinstance(log, dict) for log in logs):
        raise ValueError('expected {"logs": [{"origin", "log", "clock", ...}], "witnesses": [...]}')
    keys = []
    for log in logs:
        for name in ("log", "clock"):
            key = log.get(name)
            if not isinstance(key, str):
                raise ValueError(f"a log's {name!r} key is not a verifier key string")
            keys.append(key)
    witnesses = doc.get("witnesses", []) if isinstance(doc, dict) else []
    if not isinstance(witnesses, list) or not all(isinstance(w, str) for w in witnesses):
        raise ValueError("'witnesses' is not a list of verifier key strings")
    return keys + witnesses


def _problem(status: int, raw: bytes) -> ApiError:
    try:
        p = orjson.loads(raw)
        return ApiError(status, str(p.get("type", "")).rpartition(":")[2], str(p.get("detail", "")))
    except (orjson.JSONDecodeError, AttributeError):
        return ApiError(status, "http-error", raw[:200].decode(errors="replace"))
