"""The shard table (services/published/shards.py): names, claims, states, concurrent writers."""

from __future__ import annotations

import asyncio

import pytest

from services.published.shards import (
    SHARD_TABLE,
    claim,
    http_prefix,
    load_table,
    shard_of_origin,
    shard_origin,
    shard_prefix,
    update_table,
    with_state,
)
from storage.errors import CorruptedError
from storage.memory import MemoryStore

BASE = "notar.example/log"


def test_names_of_shard_zero_never_change_and_others_are_numbered() -> None:
    assert (shard_origin(BASE, 0), shard_prefix(0), http_prefix(0)) == (BASE, "log/", "/log/")
    assert (shard_origin(BASE, 3), shard_prefix(3), http_prefix(3)) == (f"{BASE}/3", "log/3/", "/log/3/")
    assert shard_of_origin(BASE, BASE) == 0
    assert shard_of_origin(BASE, f"{BASE}/12") == 12
    for other in (f"{BASE}/0", f"{BASE}/01", f"{BASE}/x", f"{BASE}3", "other/log", f"{BASE}/3/4"):
        assert shard_of_origin(BASE, other) is None, other


async def test_claims_give_ordinals_their_own_ids_whatever_the_start_order() -> None:
    store = MemoryStore()
    assert await load_table(store) == ()
    two = await claim(store, BASE, 2, "http://a2")
    zero = await claim(store, BASE, 0, "http://a0")
    assert (two.id, two.origin, zero.id, zero.origin) == (2, f"{BASE}/2", 0, BASE)
    again = await claim(store, BASE, 2, "http://a2-moved")
    assert again.id == 2 and again.url == "http://a2-moved"
    assert [s.id for s in await load_table(store)] == [0, 2]


async def test_a_frozen_shard_is_never_reused_and_frozen_is_final() -> None:
    store = MemoryStore()
    for ordinal in range(3):
        await claim(store, BASE, ordinal)
    await update_table(store, lambda t: with_state(t, 1, "freezing"))
    assert (await claim(store, BASE, 1)).id == 1  # still its owner while it freezes
    await update_table(store, lambda t: with_state(t, 1, "frozen"))
    fresh = await claim(store, BASE, 1)
    assert (fresh.id, fresh.origin, fresh.ordinal) == (3, f"{BASE}/3", 1)
    with pytest.raises(ValueError, match="frozen"):
        with_state(await load_table(store), 1, "active")
    with pytest.raises(ValueError, match="no shard 9"):
        with_state(await load_table(store), 9, "frozen")
    assert [(s.id, s.state) for s in await load_table(store)] == [
        (0, "active"),
        (1, "frozen"),
        (2, "active"),
        (3, "active"),
    ]


async def test_concurrent_claims_all_land() -> None:
    store = MemoryStore()
    got = await asyncio.gather(*(claim(store, BASE, o) for o in range(8)))
    assert sorted(s.id for s in got) == list(range(8))
    assert len(await load_table(store)) == 8


async def test_a_damaged_table_is_named() -> None:
    store = MemoryStore()
    await store.put(SHARD_TABLE, b'{"shards": [{"id": 0, "origin": "x", "state": "melted"}]}')
    with pytest.raises(CorruptedError, match=r"shards\.json"):
        await load_table(store)
