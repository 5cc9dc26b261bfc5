"""/healthz (the liveness probe) answers 503 problem+json naming the reason once the anchor's
sequencer stopped for good — another anchor wrote the log, RocksDB's head moved under it — so
that Kubernetes restarts the pod; a full disk or a store outage, which the process gets over by
itself, leaves it live (only /readyz says no)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient, TestServer

from services.anchor import shardset, state
from services.anchor.app import ensure_keys
from services.cli.serve import build_app
from services.common import resources
from services.common.resources import STORE, TENANTS
from storage.errors import StorageError
from storage.memory import Faults, MemoryIndex, MemoryStore
from tests.services.conftest import config_for

BOUND_S = 10.0  # every wait below gives up after this long


@dataclass
class Served:
    client: TestClient  # type: ignore[type-arg]
    auth: dict[str, str]
    index: MemoryIndex | None
    store: MemoryStore | None

    async def notarize(self, n: int) -> ClientResponse:
        digest = "sha256:" + n.to_bytes(32, "big").hex()
        return await self.client.post("/v1/digests", json={"digests": [digest]}, headers=self.auth)

    async def until(self, path: str, status: int) -> ClientResponse:
        deadline = time.monotonic() + BOUND_S
        while True:
            r = await self.client.get(path)
            if r.status == status or time.monotonic() > deadline:
                return r
            await asyncio.sleep(0.05)


@pytest.fixture
async def served(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Served]:
    """`notar serve` (all roles) on the fs store and RocksDB."""
    async for s in _serve(request, tmp_path):
        yield s


@pytest.fixture
async def faked(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Served]:
    """`notar serve` whose index and store are fakes this test holds, so that it can fault them
    or write to the index as a second writer would (RocksDB is locked by the server)."""
    index, store = MemoryIndex(faults=Faults()), MemoryStore(faults=Faults())

    async def open_store(*_: object) -> MemoryStore:
        return store

    monkeypatch.setattr(shardset, "open_index", lambda _: index)  # where each shard opens its index
    monkeypatch.setattr(resources, "open_store", open_store)
    async for s in _serve(request, tmp_path, index, store):
        yield s


async def _serve(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    index: MemoryIndex | None = None,
    store: MemoryStore | None = None,
) -> AsyncIterator[Served]:
    config, env = config_for("fs", tmp_path, request)
    ensure_keys(config.keys)
    app = build_app("all", config, env)
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        auth = {"Authorization": f"Bearer {await app[TENANTS].add('acme')}"}
        yield Served(client, auth, index, store)
    finally:
        await client.close()


async def _assert_stopped(served: Served, reason: str) -> None:
    r = await served.until("/healthz", 503)
    assert r.status == 503 and r.content_type == "application/problem+json"
    problem = await r.json()
    assert problem["type"] == "urn:notar:problem:stopped" and problem["status"] == 503
    assert "stopped for good" in problem["detail"] and reason in problem["detail"], problem
    assert (await served.client.get("/readyz")).status == 503
    refused = await served.notarize(99)
    assert refused.status == 503 and "stopped" in (await refused.json())["detail"]
    assert "notar_sequencer_stopped 1" in (await (await served.client.get("/metrics")).text()).splitlines()


async def test_healthz_fails_once_another_anchor_wrote_the_log(served: Served) -> None:
    assert (await served.notarize(1)).status == 200
    assert (await served.client.get("/healthz")).status == 200
    app = served.client.app
    assert app is not None
    await app[STORE].put("log/checkpoint", b"another anchor's checkpoint\n")
    # Publication of this batch (or of the first, if still under way) finds the log replaced.
    assert (await served.notarize(2)).status in (200, 503)
    await _assert_stopped(served, "checkpoint")


async def test_healthz_fails_once_rocksdbs_head_moved_under_the_sequencer(faked: Served) -> None:
    served = faked
    assert served.index is not None
    assert (await served.notarize(1)).status == 200
    await served.index.write_batch({state.HEAD: state.u64(1000)}, sync=True)  # a second writer
    assert (await served.notarize(2)).status == 503
    await _assert_stopped(served, "head changed under the sequencer")


async def test_a_full_disk_or_a_store_outage_leaves_healthz_ok(faked: Served) -> None:
    served = faked
    assert served.index is not None and served.store is not None
    assert (await served.notarize(1)).status == 200
    full = served.index.faults.inject(
        "write", times=10**9, error=lambda op, key: StorageError(f"{op}: No space left on device")
    )
    refused = await served.notarize(2)
    assert refused.status == 503 and "Retry-After" in refused.headers
    assert (await served.until("/readyz", 503)).status == 503
    assert (await served.client.get("/healthz")).status == 200
    served.index.faults.armed.remove(full)
    assert (await served.until("/readyz", 200)).status == 200
    served.store.faults.inject("*", times=10**9)  # the store goes away: every call fails
    assert "object store unreachable" in await (await served.until("/readyz", 503)).text()
    assert (await served.client.get("/healthz")).status == 200
    served.store.faults.clear()
    assert (await served.until("/readyz", 200)).status == 200
    assert (await served.notarize(3)).status == 200
    assert (await served.client.get("/healthz")).status == 200


async def test_healthz_fails_once_a_sequencer_task_died(faked: Served) -> None:
    served = faked
    assert served.store is not None
    assert (await served.notarize(1)).status == 200
    served.store.faults.inject(
        "put_if_version", "log/checkpoint", error=lambda op, key: RuntimeError("a bug in a driver")
    )
    await served.notarize(2)  # acknowledged; its publication raises what no retry expects
    r = await served.until("/healthz", 503)
    assert r.status == 503 and "notar-publisher ended" in (await r.json())["detail"]
    assert "a bug in a driver" in await (await served.client.get("/readyz")).text()
