"""Faults seen from the running anchor app: the EVM RPC down and the TSA answering garbage. The app
keeps sequencing, each failure shows in /metrics, no record is stored while the fault lasts, and
the anchor arrives once the fault is gone (retried with backoff by the committer)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from services.anchor.app import create_app, ensure_keys
from services.common.components import load
from services.common.resources import STORE
from services.published import layout
from services.published.anchors import AnchorStore
from storage.errors import ConfigError
from tests.anvil import KEY0, Anvil, TcpProxy
from tests.tsa import LocalTsa, Pki

ORIGIN = "faults.notar.test/log"
Start = Callable[..., Awaitable[TestClient]]  # type: ignore[type-arg]


@pytest.fixture
async def start_app(tmp_path: Path) -> AsyncIterator[Start]:
    clients: list[TestClient] = []  # type: ignore[type-arg]

    async def start(**flags: str) -> TestClient:  # type: ignore[type-arg]
        base = {"DATA_DIR": str(tmp_path / "data"), "ORIGIN": ORIGIN, "BATCH_MS": "10"}
        base["ANCHOR_INTERVAL_S"] = "1"
        config = load(flags={**base, **flags}, env={}, config_file=None)
        ensure_keys(config.keys)
        client = TestClient(TestServer(create_app(config, env={})))
        clients.append(client)
        await client.start_server()
        return client

    yield start
    for c in clients:
        await c.close()


async def sequence(client: TestClient, n: int) -> int:  # type: ignore[type-arg]
    digests = ["blake3:" + f"{n:064x}"]
    resp = await client.post("/internal/v1/entries", json={"tenant": "acme", "digests": digests})
    assert resp.status == 200, "sequencing goes on whatever the anchors do"
    body: dict[str, Any] = await resp.json()
    return int(body["receipts"][0]["log"]["tree_size"])


async def metric(client: TestClient, name: str) -> float:  # type: ignore[type-arg]
    text = await (await client.get("/metrics")).text()
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{name} not in /metrics")


async def records(client: TestClient, kind: str) -> list[str]:  # type: ignore[type-arg]
    assert client.app is not None
    store = client.app[STORE]
    return [k async for k in store.list(layout.anchor_records()) if k.endswith(f"/{kind}.json")]


async def wait_for(cond: Callable[[], Awaitable[bool]], seconds: float = 30) -> None:
    async with asyncio.timeout(seconds):
        while not await cond():
            await asyncio.sleep(0.1)


async def test_evm_rpc_down_then_back(
    anvil: Anvil, contract: str, start_app: Start, tmp_path: Path
) -> None:
    proxy = TcpProxy(anvil.port)  # the RPC is down from the start
    key = tmp_path / "evm.key"
    key.write_text(KEY0)
    key.chmod(0o600)
    client = await start_app(ANCHORS="local,evm", EVM_RPC=proxy.url, EVM_KEY_FILE=str(key),
                             EVM_CONTRACT=contract)
    size = await sequence(client, 1)

    async def failed_twice() -> bool:
        return await metric(client, 'notar_anchor_failures_total{kind="evm"}') >= 2

    await wait_for(failed_twice)
    assert await records(client, "evm") == []
    assert await records(client, "local") != [], "the other kinds go on"
    assert await metric(client, 'notar_anchor_consecutive_failures{kind="evm"}') >= 2
    await proxy.restore()

    async def anchored() -> bool:
        return await metric(client, 'notar_anchor_tree_size{kind="evm"}') >= size

    await wait_for(anchored)
    assert await metric(client, 'notar_anchor_consecutive_failures{kind="evm"}') == 0
    assert client.app is not None
    found = await AnchorStore(client.app[STORE]).first_anchored(size)
    assert found is not None and {r["type"] for r in found.records} >= {"evm"}
    await proxy.cut()


async def test_tsa_garbage_then_sound(tsa: LocalTsa, pki: Pki, start_app: Start) -> None:
    tsa.mode = "garbage"
    client = await start_app(ANCHORS="rfc3161", TSA_URL=tsa.url, TSA_CA_FILE=str(pki.ca_cert))
    await sequence(client, 2)

    async def failed() -> bool:
        return await metric(client, 'notar_anchor_failures_total{kind="rfc3161"}') >= 1

    await wait_for(failed)
    assert await records(client, "rfc3161") == []
    tsa.mode = "ok"

    async def recorded() -> bool:
        # The counter is added to after the record is stored: wait for both, then check it counted one.
        stored = await records(client, "rfc3161") != []
        return stored and await metric(client, 'notar_anchor_records_total{kind="rfc3161"}') >= 1

    await wait_for(recorded)
    assert await metric(client, 'notar_anchor_records_total{kind="rfc3161"}') == 1


async def test_missing_settings_stop_start_up_naming_them(start_app: Start) -> None:
    with pytest.raises(ConfigError, match="EVM_RPC is required with ANCHORS=evm"):
        await start_app(ANCHORS="evm")
