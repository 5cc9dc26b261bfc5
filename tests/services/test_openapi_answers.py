"""What the API answers to a body that stalls (408), one over its limit (413), two Authorization
headers (401) and a write it sheds (503 with Retry-After) is in /openapi.json for the operation
that gave it. The operations are taken from the document itself: every one with a request body,
every secured one, every write."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from multidict import CIMultiDict

from merkle.cbor import decode
from services.anchor.app import SEQUENCER
from services.common.openapi import DOCUMENT
from services.scitt.problems import DETAIL
from tests.services.conftest import config_for, serving

QUEUE_MAX = 10
DIGEST = "sha256:" + "ab" * 32
OPERATIONS: list[tuple[str, str, dict[str, Any]]] = [
    (method.upper(), path, op) for path, ops in DOCUMENT["paths"].items() for method, op in ops.items()
]
WITH_BODY = [(m, p, op) for m, p, op in OPERATIONS if "requestBody" in op]
SECURED = [(m, p, op) for m, p, op in OPERATIONS if op.get("security")]
WRITES = [("POST", "/v1/digests"), ("PUT", "/v1/documents")]


def documented(method: str, path: str, status: int, headers: CIMultiDict[str]) -> None:
    responses = DOCUMENT["paths"][path][method.lower()]["responses"]
    assert str(status) in responses, f"{method} {path} answers {status}: not in /openapi.json"
    # the JSON API's problems are problem+json; SCITT's (SCRAPI) RFC 9290 concise problem details
    media = headers.get("Content-Type", "").split(";")[0]
    expected = {
        "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}},
        "application/concise-problem-details+cbor": {"schema": {"type": "string", "format": "binary"}},
    }
    assert media in expected, f"{method} {path} {status} answers {media!r}"
    assert responses[str(status)]["content"] == {media: expected[media]}, f"{method} {path} {status}"
    if "Retry-After" in headers:
        assert "Retry-After" in responses[str(status)].get("headers", {}), f"{method} {path} {status}"


@pytest.fixture
async def served(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[tuple[TestClient, str]]:  # type: ignore[type-arg]
    """`notar serve` with a short READ_TIMEOUT_S, a DOCUMENT_MAX_MB, and batches a minute apart
    (so that QUEUE_MAX entries fill its queue until the end of the test)."""
    config, env = config_for(
        "fs",
        tmp_path,
        request,
        READ_TIMEOUT_S="1",
        DOCUMENT_MAX_MB="1",
        QUEUE_MAX=str(QUEUE_MAX),
        BATCH_MS="60000",
        BATCH_MIN_MS="60000",
        BATCH_MAX="1000",
    )
    async with serving(config, env) as both:
        yield both


def _path(path: str) -> str:
    return path.replace("{digest}", DIGEST)


async def _raw(
    client: TestClient,  # type: ignore[type-arg]
    method: str,
    path: str,
    op: dict[str, Any],
    key: str,
    length: int,
    body: bytes,
) -> tuple[int, CIMultiDict[str]]:
    """Send a head declaring `length` body bytes and `body`, no more; the status and headers of
    the answer."""
    media = next(iter(op["requestBody"]["content"]))
    reader, writer = await asyncio.open_connection(client.host, client.port)
    try:
        writer.write(
            f"{method} {_path(path)} HTTP/1.1\r\nHost: notar\r\nContent-Type: {media}\r\n"
            f"Authorization: Bearer {key}\r\nContent-Length: {length}\r\n\r\n".encode()
            + body
        )
        await writer.drain()
        async with asyncio.timeout(15):
            status = int((await reader.readline()).split()[1])
            headers: CIMultiDict[str] = CIMultiDict()
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode().partition(":")
                headers.add(name.strip(), value.strip())
        return status, headers
    finally:
        writer.close()


async def test_slow_oversized_doubly_authorized_and_shed_answers_are_documented(
    served: tuple[TestClient, str],  # type: ignore[type-arg]
) -> None:
    client, key = served
    assert {(m, p) for m, p, _ in WITH_BODY} >= set(WRITES)
    for method, path, op in WITH_BODY:
        status, headers = await _raw(client, method, path, op, key, length=100, body=b"{")
        assert status == 408, (method, path)
        documented(method, path, status, headers)
        status, headers = await _raw(client, method, path, op, key, length=50 * 1024 * 1024, body=b"")
        # SCRAPI refuses a statement over SCITT_MAX_KB as its registration policy does (400 with the reason)
        assert status == (400 if path == "/entries" else 413), (method, path)
        documented(method, path, status, headers)
    assert SECURED
    for method, path, _ in SECURED:
        twice = CIMultiDict([("Authorization", f"Bearer {key}"), ("Authorization", f"Bearer {key}")])
        r = await client.request(method, _path(path), headers=twice, data=b"{}")
        body = await r.read()
        problem = decode(body) if r.content_type.endswith("+cbor") else json.loads(body)
        assert isinstance(problem, dict)
        detail = problem.get("detail", problem.get(DETAIL))  # RFC 9290 keys are integers
        assert r.status == 401 and "one Authorization header" in str(detail), path
        documented(method, path, r.status, r.headers.copy())

    app = client.app
    assert app is not None
    digests = ["sha256:" + i.to_bytes(32, "big").hex() for i in range(QUEUE_MAX)]
    auth = {"Authorization": f"Bearer {key}"}
    waiting = asyncio.create_task(client.post("/v1/digests", json={"digests": digests}, headers=auth))
    try:
        for _ in range(200):
            if app[SEQUENCER].queued == QUEUE_MAX:
                break
            await asyncio.sleep(0.01)
        assert app[SEQUENCER].queued == QUEUE_MAX
        for method, path in WRITES:
            r = await client.request(method, path, headers=auth, data=b"{}")
            assert r.status == 503 and int(r.headers["Retry-After"]) >= 1, path
            documented(method, path, r.status, r.headers.copy())
    finally:
        waiting.cancel()  # it waits for a batch a minute away; nothing was promised to it
        with contextlib.suppress(asyncio.CancelledError):
            await waiting
