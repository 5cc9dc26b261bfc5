"""SPEC §10: `GET /v1/receipts/{digest}` over two shards in one process returns the earliest
notarization by the time the clock signed its batch, then shard id, not by the time of the
checkpoint its receipt is issued against: a shard whose checkpoint moved on after an early
notarization still has the earliest one. While the shard is active (its RocksDB) and once it is
frozen (its index and batch times in the object store)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from merkle import Receipt, verify_receipt
from merkle.checkpoint import parse_checkpoint
from merkle.note import parse_note
from services.anchor.app import FROZEN, LocalAnchor, ensure_keys
from services.anchor.freeze import request_freeze
from services.cli.serve import build_app
from services.common.resources import STORE, TENANTS
from services.model import Digests
from services.verify.shards import clock_time
from tests.services.conftest import ORIGIN, config_for

SHARD_ONE = f"{ORIGIN}/1"
FREEZE_S = 60  # the freezer reads the table every 5 s; nothing is anchored (ANCHORS="")


def next_second() -> None:
    """Sleep into the next whole second: the clock signs whole seconds, so the next batch is
    signed at a later time than every batch before."""
    time.sleep(1.02 - time.time() % 1)


async def notarize(anchor: LocalAnchor, digest: str) -> Receipt:
    answer = await anchor.submit("acme", Digests.parse([digest]))
    return Receipt.from_json(answer[len(b'{"receipts":[') : -len(b"]}")])


async def published(client: TestClient, path: str, size: int) -> str:  # type: ignore[type-arg]
    """The checkpoint at `path` once it has `size` entries or more."""
    for _ in range(200):
        note = await (await client.get(path)).text()
        if parse_checkpoint(parse_note(note).text).size >= size:
            return note
        await asyncio.sleep(0.05)
    raise AssertionError(f"{path} did not reach size {size} within 10 s")


async def test_the_earliest_is_by_the_batchs_signed_time_active_then_frozen(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    config, env = config_for("fs", tmp_path, request, SHARDS="2", ANCHORS="")
    ensure_keys(config.keys)
    app = build_app("all", config, env)
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        auth = {"Authorization": f"Bearer {await app[TENANTS].add('acme')}"}
        zero, one = LocalAnchor(app, 0), LocalAnchor(app, 1)
        digest = "sha256:" + "5e" * 32
        first = await notarize(one, digest)  # shard 1 first ...
        next_second()
        second = await notarize(zero, digest)  # ... then shard 0 ...
        next_second()
        later = await notarize(one, "sha256:" + "6f" * 32)  # ... then shard 1's checkpoint moves on
        assert (first.origin, second.origin, later.origin) == (SHARD_ONE, ORIGIN, SHARD_ONE)
        assert clock_time(first.checkpoint, SHARD_ONE) < clock_time(second.checkpoint, ORIGIN)
        await published(client, "/log/1/checkpoint", later.index + 1)
        await published(client, "/log/checkpoint", second.index + 1)

        async def earliest() -> dict[str, Any]:
            r = await client.get(f"/v1/receipts/{digest}", headers=auth)
            assert r.status == 200, await r.text()
            found: dict[str, Any] = await r.json()
            return found

        found = await earliest()
        assert (found["log"]["origin"], found["log"]["index"]) == (SHARD_ONE, first.index)
        # the checkpoint it is issued against is younger than shard 0's: by those times (the
        # rule before batch times were kept) shard 0's notarization would have won
        assert clock_time(found["checkpoint"], SHARD_ONE) > clock_time(second.checkpoint, ORIGIN)
        assert verify_receipt(found, keys=await _keys(client), digest=digest).valid

        # frozen: shard 1's look-ups read its index and its batch times from the object store
        await request_freeze(app[STORE], 1)
        deadline = time.monotonic() + FREEZE_S
        while app[FROZEN].get(1) is None:
            assert time.monotonic() < deadline, "shard 1 was not frozen in time"
            await asyncio.sleep(0.1)
        frozen = await earliest()
        assert (frozen["log"]["origin"], frozen["log"]["index"]) == (SHARD_ONE, first.index)
        assert frozen["salt"] == found["salt"]
    finally:
        await client.close()


async def _keys(client: TestClient) -> list[str]:  # type: ignore[type-arg]
    logs = (await (await client.get("/v1/keys")).json())["logs"]
    return [k for log in logs for k in (log["log"], log["clock"])]
