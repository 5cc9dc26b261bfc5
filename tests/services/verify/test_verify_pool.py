"""POST /v1/verify is worked out off the event loop, in a bounded pool with its own shedding (issue 15:
a verification's CPU on the event loop took other tenants' notarization latency from 108 ms to 4.4 s).

On a running `notar serve` app with VERIFY_WORKERS=1 and VERIFY_QUEUE=1: a notarization is answered
while a verification is still being worked out (it was not, when the verification ran in the
handler: nothing else ran until it returned), and requests beyond the pool and its queue get 503
with Retry-After while the others get their verdicts."""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import blake3
import pytest
from aiohttp.test_utils import TestClient, TestServer

from services.anchor.app import ensure_keys, keys_from
from services.cli.serve import build_app
from services.common.resources import TENANTS
from services.verify.app import POOL
from tests.services.conftest import Notar, config_for


@pytest.fixture
async def small_pool(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Notar]:
    config, env = config_for("fs", tmp_path, request, VERIFY_WORKERS="1", VERIFY_QUEUE="1")
    ensure_keys(config.keys)
    keys = keys_from(config.keys)
    app = build_app("all", config, env)
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        acme = {"Authorization": f"Bearer {await app[TENANTS].add('acme')}"}
        yield Notar(client, config, list(keys.verifier_keys.values()), acme, acme)
    finally:
        await client.close()


def b3(data: bytes) -> str:
    return "blake3:" + blake3.blake3(data).hexdigest()


async def receipt_of(notar: Notar, digest: str) -> dict[str, Any]:
    r = await notar.client.post("/v1/digests", json={"digests": [digest]}, headers=notar.acme)
    assert r.status == 200, await r.text()
    receipt: dict[str, Any] = (await r.json())["receipts"][0]
    return receipt


def heavy(receipt: dict[str, Any]) -> dict[str, Any]:
    """The receipt with 16 local anchor blocks whose signatures must each be checked (and fail)."""
    origin = receipt["log"]["origin"]
    block = {"height": 1, "prev": "0" * 64, "time": 1, "origin": origin, "tree_size": 1, "root": "0" * 64}
    blocks = [{"type": "local", **block, "sig": base64.b64encode(os.urandom(64)).decode()} for _ in range(16)]
    return {**receipt, "anchors": blocks}


async def test_a_verification_does_not_hold_up_notarizations(small_pool: Notar) -> None:
    notar = small_pool
    receipt = heavy(await receipt_of(notar, b3(b"first")))
    verifying = asyncio.ensure_future(notar.client.post("/v1/verify", json={"receipt": receipt}))
    app = notar.client.app
    assert app is not None
    for _ in range(500):  # until the verification is in the pool (bounded: 5 s)
        if app[POOL].pending:
            break
        await asyncio.sleep(0.01)
    assert app[POOL].pending == 1
    await receipt_of(notar, b3(b"second"))
    assert not verifying.done(), "a notarization was answered while the verification was worked out"
    answer = await (await verifying).json()
    assert answer["valid"] is False
    assert [c["status"] for c in answer["checks"] if c["name"].startswith("anchor")] == ["failed"] * 16


async def test_beyond_the_pool_and_its_queue_requests_are_shed(small_pool: Notar) -> None:
    notar = small_pool
    receipt = heavy(await receipt_of(notar, b3(b"the will")))
    answers = await asyncio.gather(
        *(notar.client.post("/v1/verify", json={"receipt": receipt}) for _ in range(6))
    )
    statuses = sorted(r.status for r in answers)
    assert statuses.count(200) >= 2 and 503 in statuses and set(statuses) <= {200, 503}, statuses
    for r in answers:
        if r.status == 503:
            assert r.content_type == "application/problem+json" and r.headers["Retry-After"] == "1"
            assert (await r.json())["type"] == "urn:notar:problem:pushback"
        else:
            assert (await r.json())["valid"] is False
    again = await notar.client.post("/v1/verify", json={"receipt": receipt})  # the pool drained
    assert again.status == 200
