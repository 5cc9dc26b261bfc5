"""The Index contract (storage/base.py), run against every driver: memory and RocksDB."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from storage.base import Index
from storage.errors import StorageError
from storage.memory import MemoryIndex
from storage.rocks import RocksIndex


async def scan_all(index: Index, prefix: bytes, *, start: bytes | None = None,
                   limit: int | None = None) -> list[tuple[bytes, bytes]]:
    return [item async for item in index.scan(prefix, start=start, limit=limit)]


async def test_missing_keys_read_as_none(index: Index) -> None:
    assert await index.get(b"nothing") is None
    assert await index.multi_get([b"a", b"b"]) == [None, None]
    assert await index.multi_get([]) == []


async def test_a_batch_is_applied_whole(index: Index) -> None:
    await index.write_batch({b"q/1": b"one", b"q/2": b"two", b"head": b"\x00\x02"})
    assert await index.get(b"q/1") == b"one"
    assert await index.multi_get([b"q/2", b"missing", b"head", b"q/1"]) == [
        b"two", None, b"\x00\x02", b"one"]
    await index.write_batch({b"q/3": b"three"}, [b"q/1", b"q/2"], sync=False)
    assert await index.multi_get([b"q/1", b"q/2", b"q/3"]) == [None, None, b"three"]
    # keys in any order, repeated, as a tuple: one answer per key, in the keys' order
    assert await index.multi_get((b"q/3", b"head", b"q/3", b"q/1")) == [b"three", b"\x00\x02", b"three", None]


async def test_a_key_both_put_and_deleted_in_a_batch_ends_up_deleted(index: Index) -> None:
    await index.write_batch({b"k": b"old"})
    await index.write_batch({b"k": b"new", b"other": b"x"}, [b"k"])
    assert await index.get(b"k") is None
    assert await index.get(b"other") == b"x"


async def test_scan_is_ordered_by_bytes_and_bounded_by_the_prefix(index: Index) -> None:
    keys = [b"t/\xff", b"t/\x00", b"t/a", b"t/ab", b"t/b", b"t", b"u/a", b"s/z", b"t/\x7f"]
    await index.write_batch({k: b"v" + k for k in keys})
    assert await scan_all(index, b"t/") == [
        (k, b"v" + k) for k in [b"t/\x00", b"t/a", b"t/ab", b"t/b", b"t/\x7f", b"t/\xff"]]
    assert [k for k, _ in await scan_all(index, b"")] == sorted(keys)
    assert await scan_all(index, b"nope/") == []


async def test_scan_starts_where_asked_and_stops_at_the_limit(index: Index) -> None:
    await index.write_batch({f"q/{i:03d}".encode(): b"%d" % i for i in range(20)})
    assert [k for k, _ in await scan_all(index, b"q/", start=b"q/015")] == [
        f"q/{i:03d}".encode() for i in range(15, 20)]
    assert [k for k, _ in await scan_all(index, b"q/", start=b"q/0155", limit=2)] == [
        b"q/016", b"q/017"]
    assert len(await scan_all(index, b"q/", limit=7)) == 7
    assert await scan_all(index, b"q/", limit=0) == []
    # A start before the prefix begins at the prefix; one after it finds nothing.
    assert len(await scan_all(index, b"q/", start=b"a")) == 20
    assert await scan_all(index, b"q/", start=b"r") == []


async def test_a_long_scan_sees_every_key_once(index: Index) -> None:
    keys = [i.to_bytes(4, "big") for i in range(2500)]  # several of the driver's pages
    await index.write_batch({b"b/" + k: k for k in keys})
    got = await scan_all(index, b"b/")
    assert [v for _, v in got] == keys
    assert len(await scan_all(index, b"b/", limit=1200)) == 1200


async def test_compare_and_swap_writes_only_over_the_expected_value(index: Index) -> None:
    assert await index.compare_and_swap(b"head", None, b"1")
    assert not await index.compare_and_swap(b"head", None, b"X")
    assert not await index.compare_and_swap(b"head", b"0", b"X", puts={b"side": b"effect"})
    assert await index.get(b"head") == b"1" and await index.get(b"side") is None
    await index.write_batch({b"old": b"o"})
    assert await index.compare_and_swap(b"head", b"1", b"2", puts={b"entry/1": b"e"},
                                        deletes=[b"old"])
    assert await index.multi_get([b"head", b"entry/1", b"old"]) == [b"2", b"e", None]


async def test_concurrent_compare_and_swap_loses_no_update(index: Index) -> None:
    async def increment() -> None:
        while True:
            current = await index.get(b"counter")
            value = int(current or b"0")
            if await index.compare_and_swap(b"counter", current, b"%d" % (value + 1)):
                return

    await asyncio.gather(*(increment() for _ in range(25)))
    assert await index.get(b"counter") == b"25"


KEYS = st.binary(min_size=1, max_size=4).map(lambda b: b"p" + b)
BATCHES = st.lists(st.tuples(st.dictionaries(KEYS, st.binary(max_size=8), max_size=6),
                             st.lists(KEYS, max_size=3)), max_size=8)


@settings(max_examples=25, deadline=None)
@given(batches=BATCHES, prefix=st.binary(max_size=2).map(lambda b: b"p" + b))
def test_every_driver_agrees_with_a_dict(batches: list[tuple[dict[bytes, bytes], list[bytes]]],
                                         prefix: bytes) -> None:
    async def run() -> None:
        model: dict[bytes, bytes] = {}
        with tempfile.TemporaryDirectory() as tmp:
            for index in (MemoryIndex(), RocksIndex.open(Path(tmp) / "db")):
                model.clear()
                for puts, deletes in batches:
                    await index.write_batch(puts, deletes)
                    model.update(puts)
                    for key in deletes:
                        model.pop(key, None)
                expected = sorted((k, v) for k, v in model.items() if k.startswith(prefix))
                assert await scan_all(index, prefix) == expected
                keys = sorted(model) + [b"p-absent"]
                assert await index.multi_get(keys) == [model.get(k) for k in keys]
                await index.close()
    asyncio.run(run())


async def test_compact_keeps_what_is_live(index: Index) -> None:
    await index.write_batch({b"t/a": b"1", b"t/b": b"2", b"t/c": b"3", b"u/a": b"4"})
    await index.write_batch({}, [b"t/b"])
    await index.compact([(b"t/", b"t0"), (b"u/", b"u0")])
    await index.compact([])
    assert await scan_all(index, b"") == [(b"t/a", b"1"), (b"t/c", b"3"), (b"u/a", b"4")]
    await index.write_batch({b"t/b": b"again"})
    assert await index.get(b"t/b") == b"again"


def reopen(index: Index, path: Path) -> Index:
    """The index a checkpoint wrote to `path`, opened by `index`'s own driver."""
    return MemoryIndex.load(path) if isinstance(index, MemoryIndex) else RocksIndex.open(path)


async def test_a_checkpoint_reads_back_as_the_index_and_lives_apart(index: Index, tmp_path: Path) -> None:
    await index.write_batch({b"t/a": b"1", b"t/b": b"2", b"h": b"\x00" * 8})
    await index.write_batch({}, [b"t/b"])
    await index.checkpoint(tmp_path / "copy")
    await index.write_batch({b"t/c": b"after"})
    copy = reopen(index, tmp_path / "copy")
    try:
        assert await scan_all(copy, b"") == [(b"h", b"\x00" * 8), (b"t/a", b"1")]
        await copy.write_batch({b"t/d": b"only in the copy"})
        assert await index.get(b"t/d") is None and await index.get(b"t/c") == b"after"
    finally:
        await copy.close()


async def test_a_checkpoint_taken_during_writes_holds_whole_batches(index: Index, tmp_path: Path) -> None:
    """Each batch writes a row and the count of rows: in the copy they agree."""
    stop = asyncio.Event()

    async def write() -> int:
        n = 0
        while not stop.is_set() and n < 5000:
            n += 1
            await index.write_batch({b"k/%06d" % n: b"x" * 100, b"n": b"%d" % n}, sync=False)
        return n

    writer = asyncio.create_task(write())
    await asyncio.sleep(0.05)
    await index.checkpoint(tmp_path / "copy")
    stop.set()
    written = await writer
    copy = reopen(index, tmp_path / "copy")
    try:
        rows = len(await scan_all(copy, b"k/"))
        assert 0 < rows <= written
        assert await copy.get(b"n") == b"%d" % rows
    finally:
        await copy.close()


async def test_a_checkpoint_refuses_an_existing_directory(index: Index, tmp_path: Path) -> None:
    (tmp_path / "copy").mkdir()
    with pytest.raises(StorageError):
        await index.checkpoint(tmp_path / "copy")
