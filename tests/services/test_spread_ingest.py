"""The ingest routes over a Spread (the hook lane 1 wires: `ingest.app.setup(..., submitter=
Spread(...))`): an in-process shard (LocalAnchor, which tells its spare capacity) beside a dead
one takes every write; with no shard able to take one, `POST /v1/digests` answers 503
problem+json with Retry-After of at most 2 s, and the requests after it are shed unread."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from merkle.verdict import verify_receipt
from services.anchor import app as anchor_app
from services.common.resources import TENANTS, new_app
from services.ingest import app as ingest_app
from services.ingest.spread import Loaded, Spread
from services.model import Digests
from storage.errors import NotarError, StorageError
from tests.services.conftest import ORIGIN, config_for


class Dead:
    """A shard whose anchor cannot be reached."""

    def __init__(self) -> None:
        self.calls = 0

    async def submit(self, tenant: str, digests: Digests, *, compact: bool = False) -> bytes:
        self.calls += 1
        raise StorageError("the anchor at http://127.0.0.1:9 answered 502", transient=True)

    def refusal(self, count: int = 1) -> NotarError | None:
        return None


class Clock:
    now = 1000.0

    def __call__(self) -> float:
        return self.now


Served = tuple[TestClient, Spread, Clock, dict[str, str], list[str]]  # type: ignore[type-arg]


@pytest.fixture
async def served(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Served]:
    config, env = config_for("fs", tmp_path, request)
    anchor_app.ensure_keys(config.keys)
    keys = list(anchor_app.keys_from(config.keys).verifier_keys.values())
    app = new_app(config, env, readiness=[anchor_app.anchor_ready], client_max_size=anchor_app.MAX_BODY)
    anchor_app.setup(app, config, internal_routes=False)
    local = anchor_app.LocalAnchor(app)
    assert isinstance(local, Loaded)
    clock = Clock()
    spread = Spread({0: local, 1: Dead()}, clock=clock)
    ingest_app.setup(app, config, submitter=spread)
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        auth = {"Authorization": f"Bearer {await app[TENANTS].add('acme')}"}
        yield client, spread, clock, auth, keys
    finally:
        await client.close()


def digests(n: int) -> list[str]:
    return ["blake3:" + os.urandom(32).hex() for _ in range(n)]


async def test_writes_go_through_the_live_shard_then_503_when_none_can_take_them(served: Served) -> None:
    client, spread, clock, auth, keys = served
    sent = digests(2000)
    r = await client.post("/v1/digests", json={"digests": sent}, headers=auth)
    assert r.status == 200, await r.text()
    receipts = (await r.json())["receipts"]
    assert [x["digest"] for x in receipts] == sent
    assert all(verify_receipt(x, keys=keys, origin=ORIGIN).valid for x in receipts)
    assert spread.health()[1].failures == 1, "the dead shard was tried (its part went to shard 0)"

    spread.set_shards({1: Dead()})  # the live shard left the table: none can take a write
    clock.now += 10  # past the dead one's back-off: it is tried again, and fails
    r = await client.post("/v1/digests", json={"digests": digests(3)}, headers=auth)
    assert r.status == 503 and r.content_type == "application/problem+json"
    assert (await r.json())["type"] == "urn:notar:problem:pushback"
    assert 1 <= int(r.headers["Retry-After"]) <= 2
    assert spread.health()[1].failures == 2
    r = await client.post("/v1/digests", json={"digests": digests(3)}, headers=auth)
    assert r.status == 503 and 1 <= int(r.headers["Retry-After"]) <= 2
    assert spread.health()[1].failures == 2, "not tried during its back-off"
    metrics = await (await client.get("/metrics")).text()
    assert "notar_http_shed_total 1" in metrics, "the second was shed before its body was read"
