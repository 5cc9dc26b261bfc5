"""API key rotation and revocation in the tenant registry: several keys per tenant, listed by
hash; a revoked key resolves to nobody (at once where it was revoked, after the cache time
elsewhere); a tenant cannot revoke another's key; keys of any other shape are never looked up."""

from __future__ import annotations

import asyncio
import time

import pytest

from services.common.tenants import TenantRegistry, hash_key
from storage.errors import NotFoundError
from storage.memory import MemoryStore


async def test_rotate_list_and_revoke() -> None:
    store = MemoryStore()
    registry = TenantRegistry(store)
    first = await registry.add("acme")
    second = await registry.new_key("acme")
    other = await registry.add("globex")
    listed = await registry.keys("acme")
    assert sorted(d for d, _ in listed) == sorted([hash_key(first), hash_key(second)])
    assert all(abs(created - time.time()) < 60 for _, created in listed)

    with pytest.raises(NotFoundError):
        await registry.revoke("globex", first)  # not globex's key
    assert await registry.resolve(first) == "acme"
    with pytest.raises(ValueError):
        await registry.revoke("acme", first[:20])  # neither a key nor a hash
    assert await registry.revoke("acme", hash_key(first)) == hash_key(first)  # by hash, as listed
    assert await registry.resolve(first) is None
    with pytest.raises(NotFoundError):
        await registry.revoke("acme", first)  # twice
    assert await registry.resolve(second) == "acme" and await registry.resolve(other) == "globex"
    assert [d for d, _ in await registry.keys("acme")] == [hash_key(second)]


async def test_another_server_stops_accepting_a_revoked_key_after_its_cache_time() -> None:
    store = MemoryStore()
    admin, server = TenantRegistry(store), TenantRegistry(store, cache_s=0.2)
    key = await admin.add("acme")
    assert await server.resolve(key) == "acme"
    await admin.revoke("acme", key)
    deadline = time.monotonic() + 5
    while await server.resolve(key) is not None:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)


@pytest.mark.parametrize(
    "key",
    [
        "",
        "notar_",
        "notar_" + "a" * 42,
        "notar_" + "a" * 44,
        "notar_" + "a" * 42 + "=",
        "notar_" + "é" * 43,
        "notar_" + "a" * 42 + "\udcff",
        "Notar_" + "a" * 43,
    ],
)
async def test_keys_of_another_shape_are_nobodys(key: str) -> None:
    assert await TenantRegistry(MemoryStore()).resolve(key) is None
