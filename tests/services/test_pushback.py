"""A full sequencer queue refuses new requests with 503 + Retry-After before anything else,
their body unread (services/common/shedding.py)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from services.anchor.app import SEQUENCER, ensure_keys
from services.cli.serve import build_app
from services.common.resources import TENANTS
from tests.services.conftest import config_for

QUEUE_MAX = 10


def digests(start: int, n: int) -> list[str]:
    return ["sha256:" + i.to_bytes(32, "big").hex() for i in range(start, start + n)]


@pytest.fixture
async def full(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[tuple[TestClient, str]]:  # type: ignore[type-arg]
    """An embedded server whose queue is full: QUEUE_MAX entries wait for a batch that is not
    cut for a minute (BATCH_MS) nor by size (BATCH_MAX)."""
    config, env = config_for(
        "fs",
        tmp_path,
        request,
        QUEUE_MAX=str(QUEUE_MAX),
        BATCH_MS="60000",
        BATCH_MIN_MS="60000",
        BATCH_MAX="1000",
    )
    ensure_keys(config.keys)
    app = build_app("all", config, env)
    client = TestClient(TestServer(app))
    await client.start_server()
    key = await app[TENANTS].add("acme")
    auth = {"Authorization": f"Bearer {key}"}
    waiting = asyncio.create_task(
        client.post("/v1/digests", json={"digests": digests(0, QUEUE_MAX)}, headers=auth)
    )
    for _ in range(200):
        if app[SEQUENCER].queued == QUEUE_MAX:
            break
        await asyncio.sleep(0.01)
    assert app[SEQUENCER].queued == QUEUE_MAX
    try:
        yield client, key
    finally:
        waiting.cancel()  # it waits for a batch a minute away; nothing was promised to it
        with contextlib.suppress(asyncio.CancelledError):
            await waiting
        await client.close()


async def test_a_full_queue_answers_503_problem_with_retry_after(full: tuple[TestClient, str]) -> None:  # type: ignore[type-arg]
    client, key = full
    r = await client.post(
        "/v1/digests", json={"digests": digests(100, 1)}, headers={"Authorization": f"Bearer {key}"}
    )
    assert r.status == 503 and r.content_type == "application/problem+json"
    assert int(r.headers["Retry-After"]) >= 1
    assert (await r.json())["type"] == "urn:notar:problem:pushback"


async def test_a_full_queue_refuses_before_the_body_arrives(full: tuple[TestClient, str]) -> None:  # type: ignore[type-arg]
    """The head promises 100 KB and none of it comes: the 503 is the answer at once, where
    reading first would have waited READ_TIMEOUT_S for the body."""
    client, key = full
    reader, writer = await asyncio.open_connection(client.host, client.port)
    writer.write(
        (
            "POST /v1/digests HTTP/1.1\r\nHost: notar\r\nContent-Type: application/json\r\n"
            f"Authorization: Bearer {key}\r\nContent-Length: 100000\r\n\r\n"
        ).encode()
    )
    await writer.drain()
    try:
        status = await asyncio.wait_for(reader.readline(), timeout=10)
    finally:
        writer.close()
    assert status.startswith(b"HTTP/1.1 503")


async def test_shed_requests_are_counted_and_nothing_else_is_looked_at(
    full: tuple[TestClient, str],  # type: ignore[type-arg]
) -> None:
    """Shed first: not even the API key (a request without one gets the 503 too), and the
    count shows in /metrics."""
    client, _ = full
    r = await client.post("/v1/digests", json={"digests": digests(200, 1)})
    assert r.status == 503 and "Retry-After" in r.headers
    r = await client.put("/v1/documents", data=b"a document")
    assert r.status == 503 and "Retry-After" in r.headers
    metrics = await (await client.get("/metrics")).text()
    assert "notar_http_shed_total 2" in metrics.splitlines()
