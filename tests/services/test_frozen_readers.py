"""Split roles (services/internal/directory.py): a frozen shard's look-ups and erasures go to the
anchor of the lowest active shard id, and to the next active shard's anchor when that one is
unreachable or refusing (`FrozenReaders`), over HTTP as verify pods ask them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import pytest
from aiohttp import web

from merkle import parse_digest
from services.internal.directory import TableShards
from services.internal.wire import encode_forgotten
from services.model import Found
from services.published.shards import Shard, update_table
from storage.errors import PushbackError, StorageError
from storage.memory import MemoryStore
from tests.serving import free_port

BASE = "readers.test/log"
DIGEST = parse_digest("blake3:" + "ab" * 32)

Serve = Callable[[int], Coroutine[Any, Any, tuple[str, list[str]]]]


@pytest.fixture
async def anchors() -> AsyncIterator[Serve]:
    """Loopback anchors answering the internal look-up and erasure routes of a frozen origin as an
    anchor does (their own `status` with `status` != 200); each records the origins asked."""
    runners: list[web.AppRunner] = []

    async def serve(status: int) -> tuple[str, list[str]]:
        asked: list[str] = []

        async def entries(request: web.Request) -> web.Response:
            asked.append(request.query["origin"])
            if status != 200:
                return web.json_response({"type": "urn:notar:problem:pushback"}, status=status)
            if request.method == "DELETE":
                return web.json_response(encode_forgotten(1))
            return web.json_response({"entries": [{"index": 7, "salt": "00" * 16, "signed_at": 1700000000}]})

        app = web.Application()
        app.router.add_get("/internal/v1/entries", entries)
        app.router.add_delete("/internal/v1/entries", entries)
        runner = web.AppRunner(app)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        runners.append(runner)
        return f"http://127.0.0.1:{port}", asked

    yield serve
    for runner in runners:
        await runner.cleanup()


async def frozen_link(store: MemoryStore, *urls: str) -> TableShards:
    table = (
        Shard(0, BASE, "active", 0, urls[0]),
        Shard(1, f"{BASE}/1", "frozen", 1, None),
        *(Shard(i + 2, f"{BASE}/{i + 2}", "active", i + 2, url) for i, url in enumerate(urls[1:])),
    )
    await update_table(store, lambda _: table)
    return TableShards(store, refresh_s=0)


async def test_a_frozen_shard_is_read_by_the_next_anchor_when_the_first_fails(anchors: Serve) -> None:
    store = MemoryStore()
    unreachable = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    busy, busy_asked = await anchors(503)
    good, good_asked = await anchors(200)
    shards = await frozen_link(store, unreachable, busy, good)
    try:
        (frozen,) = [link.anchor for link in await shards.links() if link.shard.state == "frozen"]
        assert frozen is not None
        assert await frozen.lookup("acme", DIGEST) == [Found(7, bytes(16), 1700000000)]
        assert await frozen.forget("acme", DIGEST) == 1
        assert busy_asked == good_asked == [f"{BASE}/1", f"{BASE}/1"]  # each asked, in id order
        with pytest.raises(PushbackError, match="frozen"):
            await frozen.submit("acme", None)  # type: ignore[arg-type]
    finally:
        await shards.close()


async def test_the_last_anchors_error_is_passed_on_when_every_one_fails(anchors: Serve) -> None:
    store = MemoryStore()
    busy, _ = await anchors(503)
    shards = await frozen_link(store, f"http://127.0.0.1:{free_port()}", busy)
    try:
        (frozen,) = [link.anchor for link in await shards.links() if link.shard.state == "frozen"]
        assert frozen is not None
        with pytest.raises(PushbackError, match="busy"):
            await frozen.lookup("acme", DIGEST)
        await update_table(store, lambda table: (table[0], table[1]))  # the busy one's shard went
        (frozen,) = [link.anchor for link in await shards.links() if link.shard.state == "frozen"]
        assert frozen is not None
        with pytest.raises(StorageError, match="cannot reach"):
            await frozen.lookup("acme", DIGEST)
    finally:
        await shards.close()
