"""The in-memory fakes: stricter than the contract about immutability, and able to fail any
call "before" (not stored) or "after" (stored) its effect, as the sequencer's tests need."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from storage.errors import ConflictError, NotFoundError, StorageError
from storage.memory import MemoryIndex, MemoryStore


async def test_an_immutable_key_cannot_be_changed_even_by_put() -> None:
    store = MemoryStore()
    await store.put_if_absent("tile/0/000", b"tile")
    await store.put("tile/0/000", b"tile")  # same bytes: harmless
    with pytest.raises(ConflictError, match="tile/0/000"):
        await store.put("tile/0/000", b"changed")
    with pytest.raises(ConflictError):
        await store.put_if_version("tile/0/000", b"changed",
                                   (await store.get_versioned("tile/0/000")).version)
    await store.delete("tile/0/000")
    await store.put("tile/0/000", b"changed")  # deleted, so no longer immutable


async def test_failed_and_not_stored() -> None:
    store = MemoryStore()
    fault = store.faults.inject("put_if_absent", "tile/*")
    with pytest.raises(StorageError, match="not stored"):
        await store.put_if_absent("tile/0/000", b"t")
    with pytest.raises(NotFoundError):
        await store.get("tile/0/000")
    await store.put_if_absent("tile/0/000", b"t")  # the fault is spent: the retry works
    assert await store.get("tile/0/000") == b"t" and fault.fired == 1


async def test_failed_but_stored() -> None:
    store = MemoryStore()
    store.faults.inject("put_if_version", "checkpoint", stored=True)
    with pytest.raises(StorageError, match="but stored"):
        await store.put_if_version("checkpoint", b"size 1", None)
    assert await store.get("checkpoint") == b"size 1"
    # The retry of a write that landed succeeds, as the contract promises.
    version = await store.put_if_version("checkpoint", b"size 1", None)
    assert (await store.get_versioned("checkpoint")).version == version


async def test_faults_match_by_operation_key_and_count() -> None:
    store = MemoryStore()
    store.faults.inject("write", "tile/*", skip=2, times=2)
    await store.put_if_absent("tile/0/000", b"0")
    await store.put("checkpoint", b"c")  # another key: not counted
    await store.put_stream("tile/0/001", _chunks(b"1"), immutable=True)
    for key in ("tile/0/002", "tile/0/003"):
        with pytest.raises(StorageError):
            await store.put_if_absent(key, b"x")
    await store.put_if_absent("tile/0/004", b"4")
    assert sorted([k async for k in store.list("tile/")]) == [
        "tile/0/000", "tile/0/001", "tile/0/004"]
    assert [op for op, _ in store.faults.journal] == [
        "put_if_absent", "put", "put_stream", "put_if_absent", "put_if_absent", "put_if_absent"]


async def test_reads_can_fail_too_and_errors_can_be_anything() -> None:
    store = MemoryStore()
    await store.put("checkpoint", b"c")
    store.faults.inject("get", error=lambda op, key: KeyboardInterrupt(f"crash in {op} {key}"))
    with pytest.raises(KeyboardInterrupt, match="crash in get checkpoint"):
        await store.get("checkpoint")
    assert await store.get("checkpoint") == b"c"
    store.faults.inject("*", times=1)
    with pytest.raises(StorageError):
        await store.get_range("checkpoint", 0, 1)


async def test_every_write_of_a_run_can_be_failed_in_turn() -> None:
    """The pattern for crash tests: record a run's writes, then fail each one in turn."""
    async def run(store: MemoryStore) -> None:
        await store.put_if_absent("tile/0/000", b"t")
        await store.put_if_version("checkpoint", b"c", None)

    recorded = MemoryStore()
    await run(recorded)
    for step in range(len(recorded.faults.journal)):
        for stored in (False, True):
            store = MemoryStore()
            store.faults.inject("write", skip=step, stored=stored)
            with pytest.raises(StorageError):
                await run(store)
            assert len(store.objects) == step + stored


async def test_index_faults_apply_a_batch_whole_or_not_at_all() -> None:
    index = MemoryIndex()
    index.faults.inject("write_batch", "q/*")
    with pytest.raises(StorageError):
        await index.write_batch({b"head": b"1", b"q/1": b"e"})
    assert index.data == {}
    index.faults.inject("write_batch", stored=True)
    with pytest.raises(StorageError):
        await index.write_batch({b"head": b"1", b"q/1": b"e"})
    assert index.data == {b"head": b"1", b"q/1": b"e"}
    index.faults.inject("compare_and_swap", "head", stored=True)
    with pytest.raises(StorageError):
        await index.compare_and_swap(b"head", b"1", b"2", puts={b"q/2": b"f"})
    assert await index.multi_get([b"head", b"q/2"]) == [b"2", b"f"]
    assert [op for op, _ in index.faults.journal] == ["write_batch", "write_batch",
                                                      "compare_and_swap"]


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def test_a_key_cannot_be_a_path_prefix_of_another_as_in_a_directory() -> None:
    store = MemoryStore()
    await store.put_if_absent("a/b", b"x")
    with pytest.raises(StorageError, match="'a'"):
        await store.put_if_absent("a", b"y")
    with pytest.raises(StorageError, match="'a/b/c'"):
        await store.put("a/b/c", b"y")
    await store.put_if_absent("a/bc", b"a sibling is fine")
    await store.delete("a/b")
    await store.put_if_absent("a/b/c", b"now a/b is free to be a directory")
    await store.delete("a/b/c")
    await store.delete("a/bc")
    await store.put_if_absent("a", b"and a too, once nothing is below it")
