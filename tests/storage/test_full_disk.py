"""The local drivers on a disk that fills up (a loopback ext4 of their own): RocksDB refuses
writes while it is full, keeps serving reads, takes writes again once space is freed (it is
reopened: RocksDB refuses every write after a failed one until then) and loses nothing it
acknowledged; the directory store leaves no partial temporary file behind."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from loadtest.reliability.smalldisk import fill, small_disk
from storage.errors import StorageError
from storage.fs import FsStore
from storage.rocks import RocksIndex
from tests.smalldisk import small_disk_or_skip

BOUND_S = 10.0


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    small_disk_or_skip()
    with small_disk(tmp_path / "disk.img", tmp_path / "mnt", size_mb=16) as mnt:
        yield mnt


def key(i: int) -> bytes:
    return b"k%08d" % i


async def test_rocks_refuses_while_full_then_reopens_and_loses_nothing(disk: Path) -> None:
    index = RocksIndex.open(disk / "index")
    acked: dict[bytes, bytes] = {}
    for i in range(100):
        acked[key(i)] = bytes([i % 256]) * 2000
        await index.write_batch({key(i): acked[key(i)]}, sync=True)
    fill(disk / "filler")
    for i in range(100, 20_000):  # RocksDB may still have room preallocated for its log
        value = bytes([i % 256]) * 2000
        try:
            await index.write_batch({key(i): value}, sync=True)
        except StorageError:
            break
        acked[key(i)] = value
    else:
        pytest.fail("20,000 writes of 2 kB fit on a full 16 MB disk")
    with pytest.raises(StorageError):  # still full: refused, and at once
        await asyncio.wait_for(index.write_batch({b"x": b"y"}, sync=True), 5)
    assert await index.get(key(0)) == acked[key(0)]  # reads go on
    (disk / "filler").unlink()
    deadline = time.monotonic() + BOUND_S
    while True:
        try:
            await index.write_batch({b"after": b"freed"}, sync=True)
            break
        except StorageError:
            assert time.monotonic() < deadline, "RocksDB took no write after the space was freed"
            await asyncio.sleep(0.1)
    assert await index.multi_get(list(acked)) == list(acked.values())
    await index.close()
    again = RocksIndex.open(disk / "index")
    assert await again.multi_get([*acked, b"after"]) == [*acked.values(), b"freed"]
    await again.close()


async def test_fs_store_leaves_no_partial_file_when_full(disk: Path) -> None:
    store = FsStore(disk / "store")
    await store.put("small", b"ok")
    fill(disk / "filler")
    for i in range(5):
        with pytest.raises(StorageError, match="No space left"):
            await store.put_if_absent(f"tile/{i}", bytes(256 * 1024))
    assert list((disk / "store" / ".tmp").iterdir()) == []
    (disk / "filler").unlink()
    await store.put_if_absent("tile/0", bytes(256 * 1024))
    assert await store.get("small") == b"ok"
    await store.close()
