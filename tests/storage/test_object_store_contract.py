"""The ObjectStore contract (storage/base.py), run against every driver: memory, fs, and S3 on a
real server. A driver passes only if it behaves exactly like the others."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

import pytest

from storage.base import ObjectStore, Versioned
from storage.errors import ConflictError, NotFoundError
from storage.memory import MemoryStore
from storage.s3 import S3Store

BIG = 11 * 1024 * 1024 + 12345  # above two S3 parts of 5 MiB, with an odd tail


async def keys_of(store: ObjectStore, prefix: str = "") -> list[str]:
    return sorted([key async for key in store.list(prefix)])


async def stream(data: bytes, sizes: tuple[int, ...] = (1, 1000, 65536, 3 * 1024 * 1024)
                 ) -> AsyncIterator[bytes]:
    """``data`` in chunks of irregular sizes, as a network body arrives."""
    i, n = 0, 0
    while i < len(data):
        size = sizes[n % len(sizes)]
        yield data[i:i + size]
        i, n = i + size, n + 1


async def test_get_missing_key_raises_not_found_naming_it(store: ObjectStore) -> None:
    with pytest.raises(NotFoundError, match="tile/0/404"):
        await store.get("tile/0/404")


async def test_put_then_get_returns_the_bytes_and_put_replaces(store: ObjectStore) -> None:
    await store.put("checkpoint", b"size 1")
    assert await store.get("checkpoint") == b"size 1"
    await store.put("checkpoint", b"size 2, longer")
    assert await store.get("checkpoint") == b"size 2, longer"


async def test_empty_and_binary_bodies_round_trip(store: ObjectStore) -> None:
    await store.put_if_absent("empty", b"")
    assert await store.get("empty") == b""
    blob = bytes(range(256)) * 40
    await store.put_if_absent("tile/entries/000", blob)
    assert await store.get("tile/entries/000") == blob


async def test_put_if_absent_is_idempotent_for_identical_bytes(store: ObjectStore) -> None:
    await store.put_if_absent("tile/0/000", b"hashes")
    await store.put_if_absent("tile/0/000", b"hashes")  # a retry after "failed but stored"
    assert await store.get("tile/0/000") == b"hashes"


async def test_put_if_absent_refuses_different_bytes_and_keeps_the_first(
        store: ObjectStore) -> None:
    await store.put_if_absent("tile/0/000", b"first")
    with pytest.raises(ConflictError, match="tile/0/000"):
        await store.put_if_absent("tile/0/000", b"other")
    with pytest.raises(ConflictError):
        await store.put_if_absent("tile/0/000", b"firs")  # a prefix of it is different too
    assert await store.get("tile/0/000") == b"first"


async def test_concurrent_put_if_absent_of_different_bytes_lets_exactly_one_win(
        store: ObjectStore) -> None:
    results = await asyncio.gather(
        *(store.put_if_absent("race", f"writer {i}".encode()) for i in range(4)),
        return_exceptions=True)
    winners = [i for i, r in enumerate(results) if r is None]
    assert len(winners) == 1
    assert all(isinstance(r, ConflictError) for r in results if r is not None)
    assert await store.get("race") == f"writer {winners[0]}".encode()


async def test_put_all_if_absent_stores_every_object_and_a_retry_succeeds(store: ObjectStore) -> None:
    items = [(f"tile/{level}/x{i:03d}/{j:03d}", os.urandom(40 + i)) for level in (0, 1)
             for i in range(3) for j in range(7)]  # 42 objects over 6 directories
    await store.put_all_if_absent(items)
    await store.put_all_if_absent(items[::-1])  # a retry after "failed but stored", any order
    assert await keys_of(store, "tile/") == sorted(k for k, _ in items)
    for key, data in items:
        assert await store.get(key) == data
    await store.put_all_if_absent([])


async def test_put_all_if_absent_refuses_different_bytes_and_keeps_the_first(store: ObjectStore) -> None:
    await store.put_if_absent("tile/0/005", b"first")
    items = [(f"tile/0/{i:03d}", b"other" if i == 5 else b"new") for i in range(9)]
    with pytest.raises(ConflictError, match="tile/0/005"):
        await store.put_all_if_absent(items)
    assert await store.get("tile/0/005") == b"first"
    await store.put_all_if_absent([item for item in items if item[0] != "tile/0/005"])  # the rest
    assert await keys_of(store, "tile/0/") == [f"tile/0/{i:03d}" for i in range(9)]


@pytest.mark.parametrize("bad", ["../escape", "tile//0", "/root", ""])
async def test_put_all_if_absent_refuses_a_bad_key_before_writing_any(store: ObjectStore, bad: str) -> None:
    with pytest.raises(ValueError):
        await store.put_all_if_absent([("tile/0/000", b"a"), (bad, b"b"), ("tile/0/001", b"c")])
    assert await keys_of(store) == []


async def test_get_range_is_a_slice(store: ObjectStore) -> None:
    await store.put_if_absent("doc", b"0123456789")
    assert await store.get_range("doc", 0, 1) == b"0"
    assert await store.get_range("doc", 3, 7) == b"3456"
    assert await store.get_range("doc", 8, 100) == b"89"  # clipped at the end
    assert await store.get_range("doc", 10, 20) == b""  # starts at the end
    assert await store.get_range("doc", 50, 60) == b""
    with pytest.raises(NotFoundError):
        await store.get_range("nothing", 0, 10)
    for start, end in [(5, 5), (6, 2), (-1, 3)]:
        with pytest.raises(ValueError):
            await store.get_range("doc", start, end)


async def test_small_stream_is_stored_whole(store: ObjectStore) -> None:
    data = os.urandom(70_000)
    assert await store.put_stream("doc/small", stream(data), immutable=True) == len(data)
    assert await store.get("doc/small") == data


async def test_empty_stream_stores_an_empty_object(store: ObjectStore) -> None:
    assert await store.put_stream("doc/empty", stream(b""), immutable=True) == 0
    assert await store.get("doc/empty") == b""


async def test_big_stream_round_trips_and_reads_back_in_ranges(store: ObjectStore) -> None:
    data = os.urandom(BIG)
    assert await store.put_stream("doc/big", stream(data), immutable=True) == BIG
    assert await store.get("doc/big") == data
    step = 4 * 1024 * 1024
    pieces = [await store.get_range("doc/big", i, i + step) for i in range(0, BIG, step)]
    assert b"".join(pieces) == data


async def test_big_immutable_stream_accepts_identical_and_refuses_different_bytes(
        store: ObjectStore) -> None:
    data = os.urandom(BIG)
    await store.put_stream("doc/big", stream(data), immutable=True)
    assert await store.put_stream("doc/big", stream(data, (777_777,)), immutable=True) == BIG
    changed = data[:-1] + bytes([data[-1] ^ 1])
    with pytest.raises(ConflictError, match="doc/big"):
        await store.put_stream("doc/big", stream(changed), immutable=True)
    assert await store.get("doc/big") == data


async def test_mutable_stream_replaces(store: ObjectStore) -> None:
    await store.put_stream("doc/m", stream(b"old"), immutable=False)
    await store.put_stream("doc/m", stream(b"new body"), immutable=False)
    assert await store.get("doc/m") == b"new body"


@pytest.mark.parametrize("size", [1000, BIG])
async def test_a_stream_that_fails_leaves_nothing_visible(store: ObjectStore, size: int) -> None:
    failure = RuntimeError("client went away")

    async def broken() -> AsyncIterator[bytes]:
        async for chunk in stream(os.urandom(size)):
            yield chunk
        raise failure

    with pytest.raises(RuntimeError) as caught:
        await store.put_stream("doc/broken", broken(), immutable=True)
    assert caught.value is failure  # the caller's own error, not a translation of it
    with pytest.raises(NotFoundError):
        await store.get("doc/broken")
    assert await keys_of(store) == []


async def test_list_yields_each_key_under_the_prefix_once(store: ObjectStore) -> None:
    keys = ["checkpoint", "tile/0/000", "tile/0/001", "tile/0/001.p/7", "tile/1/000",
            "tile/entries/000", "tile-x", "tiles/0"]
    await asyncio.gather(*(store.put_if_absent(k, k.encode()) for k in keys))
    assert await keys_of(store) == sorted(keys)
    assert await keys_of(store, "tile/") == [k for k in sorted(keys) if k.startswith("tile/")]
    assert await keys_of(store, "tile/0/00") == ["tile/0/000", "tile/0/001", "tile/0/001.p/7"]
    assert await keys_of(store, "tile") == sorted(k for k in keys if k.startswith("tile"))
    assert await keys_of(store, "nothing/") == []
    assert await keys_of(store, "checkpoint") == ["checkpoint"]


async def test_list_goes_past_one_page(store: ObjectStore) -> None:
    keys = [f"tile/entries/{i:04d}" for i in range(1003)]  # S3 answers 1000 keys per page
    semaphore = asyncio.Semaphore(32)

    async def put(key: str) -> None:
        async with semaphore:
            await store.put_if_absent(key, b"x")
    await asyncio.gather(*(put(k) for k in keys))
    listed = [key async for key in store.list("tile/")]
    assert len(listed) == len(set(listed)) == 1003
    assert sorted(listed) == keys


async def test_delete_removes_and_tolerates_missing_keys(store: ObjectStore) -> None:
    await store.put_if_absent("tile/0/000", b"a")
    await store.delete("tile/0/000")
    await store.delete("tile/0/000")
    await store.delete("never/was")
    with pytest.raises(NotFoundError):
        await store.get("tile/0/000")
    assert await keys_of(store) == []
    await store.put_if_absent("tile/0/000", b"b")  # a deleted immutable key may be written again
    assert await store.get("tile/0/000") == b"b"


async def test_versioned_write_creates_only_when_absent(store: ObjectStore) -> None:
    version = await store.put_if_version("checkpoint", b"size 1", None)
    current = await store.get_versioned("checkpoint")
    assert current.data == b"size 1" and current.version == version
    with pytest.raises(ConflictError, match="checkpoint"):
        await store.put_if_version("checkpoint", b"size 1 from another writer", None)
    # A retry of the same write after it landed succeeds and reports the stored version.
    assert await store.put_if_version("checkpoint", b"size 1", None) == version


async def test_versioned_write_refuses_a_stale_version(store: ObjectStore) -> None:
    v1 = await store.put_if_version("checkpoint", b"size 1", None)
    v2 = await store.put_if_version("checkpoint", b"size 2", v1)
    assert v2 != v1
    assert await store.get_versioned("checkpoint") == Versioned(b"size 2", v2)
    with pytest.raises(ConflictError):
        await store.put_if_version("checkpoint", b"size 3 from a stale writer", v1)
    assert await store.get("checkpoint") == b"size 2"
    v3 = await store.put_if_version("checkpoint", b"size 3", v2)
    assert (await store.get_versioned("checkpoint")).version == v3


async def test_versioned_write_on_a_missing_key_with_a_version_is_a_conflict(
        store: ObjectStore) -> None:
    v1 = await store.put_if_version("checkpoint", b"size 1", None)
    await store.delete("checkpoint")
    with pytest.raises(ConflictError):
        await store.put_if_version("checkpoint", b"size 2", v1)
    with pytest.raises(NotFoundError):
        await store.get_versioned("checkpoint")


async def test_two_writers_racing_on_one_version_cannot_both_win(store: ObjectStore) -> None:
    start = await store.put_if_version("checkpoint", b"size 0", None)
    results = await asyncio.gather(
        *(store.put_if_version("checkpoint", f"size 1 by {i}".encode(), start)
          for i in range(4)),
        return_exceptions=True)
    winners = [i for i, r in enumerate(results) if isinstance(r, str)]
    assert len(winners) == 1, results
    assert all(isinstance(r, ConflictError) for r in results if not isinstance(r, str))
    assert await store.get("checkpoint") == f"size 1 by {winners[0]}".encode()


async def test_unicode_keys_round_trip(store: ObjectStore) -> None:
    key = "documents/blake3:ab/Überweisung 日本 (1).pdf"
    await store.put_if_absent(key, b"pdf")
    assert await store.get(key) == b"pdf"
    assert await keys_of(store, "documents/") == [key]


@pytest.mark.parametrize("key", ["", "/abs", "a//b", "../x", "a/../b", "a/./b", ".hidden",
                                 "a/.b", "a\\b", "a\x00b", "a\nb", "x/", "k" * 1025])
async def test_invalid_keys_are_refused_before_any_io(store: ObjectStore, key: str) -> None:
    with pytest.raises(ValueError):
        await store.put_if_absent(key, b"x")
    with pytest.raises(ValueError):
        await store.put(key, b"x")
    with pytest.raises(ValueError):
        await store.get(key)
    with pytest.raises(ValueError):
        await store.delete(key)
    with pytest.raises(ValueError):
        await store.put_stream(key, stream(b"x"), immutable=True)
    assert await keys_of(store) == []


async def test_every_write_takes_a_cache_control_and_keeps_the_bytes(store: ObjectStore) -> None:
    """S3 keeps it as the object's metadata (what a CDN in front of the bucket serves), the memory
    fake records it, a directory has nowhere to keep it; the bytes are the same everywhere."""
    immutable, short = "public, max-age=31536000, immutable", "public, max-age=2"
    await store.put_if_absent("tile/0/000", b"hashes", cache_control=immutable)
    await store.put_if_absent("tile/0/000", b"hashes", cache_control=immutable)  # a retry
    version = await store.put_if_version("checkpoint", b"size 1", None, cache_control=short)
    await store.put_if_version("checkpoint", b"size 2", version, cache_control=short)
    await store.put("keys", b"{}", cache_control=short)
    assert [await store.get(k) for k in ("tile/0/000", "checkpoint", "keys")] == [b"hashes", b"size 2", b"{}"]
    kept: dict[str, str | None]
    if isinstance(store, S3Store):
        heads = [await store.client.head_object(Bucket=store.bucket, Key=store.object_key(k))
                 for k in ("tile/0/000", "checkpoint", "keys")]
        kept = dict(zip(("tile/0/000", "checkpoint", "keys"), [h.get("CacheControl") for h in heads],
                        strict=True))
    elif isinstance(store, MemoryStore):
        kept = dict(store.cache_control)
    else:
        return
    assert kept == {"tile/0/000": immutable, "checkpoint": short, "keys": short}
