"""What the contract suites cannot see from outside: the directory store fsyncs what it
writes, leaves no temporary files, survives a restart and shares a directory safely between
processes; the RocksDB index survives a restart and refuses a second opener."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from rocksdict import WriteBatch, WriteOptions

from storage.errors import ConflictError, StorageError
from storage.fs import FsStore
from storage.rocks import MEMTABLE_BYTES, RocksIndex


async def chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


def files_under(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


async def test_writes_fsync_the_file_and_the_directory(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    store = FsStore(tmp_path)
    synced: list[str] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    await store.put_if_absent("tile/0/000", b"t")
    assert any(p.startswith(str(tmp_path / ".tmp")) for p in synced)  # the data, before it shows
    assert str(tmp_path / "tile" / "0") in synced  # the entry in its directory
    assert str(tmp_path / "tile") in synced and str(tmp_path) in synced  # the new directories
    synced.clear()
    await store.put("checkpoint", b"c")
    await store.put_stream("doc", chunks(b"a", b"b"), immutable=False)
    assert synced.count(str(tmp_path)) == 2
    await store.close()


async def test_a_stream_is_entirely_on_disk_when_it_is_fsynced(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = FsStore(tmp_path)
    sizes: list[int] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        if os.readlink(f"/proc/self/fd/{fd}").startswith(str(tmp_path / ".tmp")):
            sizes.append(os.fstat(fd).st_size)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    body = [b"x" * 1_500_000, b"tail that stays in a write buffer unless flushed"]
    await store.put_stream("doc", chunks(*body), immutable=True)
    assert sizes == [sum(map(len, body))]
    await store.close()


async def test_no_temporary_file_is_left_behind(tmp_path: Path) -> None:
    store = FsStore(tmp_path)
    await store.put_if_absent("a/b", b"1")
    await store.put_if_absent("a/b", b"1")
    with pytest.raises(ConflictError):
        await store.put_if_absent("a/b", b"2")
    await store.put("c", b"3")
    await store.put_if_version("d", b"4", None)

    async def broken() -> AsyncIterator[bytes]:
        yield b"partial"
        raise OSError("disconnected")

    with pytest.raises(OSError, match="disconnected"):
        await store.put_stream("e", broken(), immutable=True)
    assert files_under(tmp_path) == [".lock", "a/b", "c", "d"]
    await store.close()


async def test_what_one_instance_wrote_another_reads_after_a_restart(tmp_path: Path) -> None:
    first = FsStore(tmp_path)
    await first.put_if_absent("tile/0/000", b"tile")
    await first.close()
    second = FsStore(tmp_path)
    assert await second.get("tile/0/000") == b"tile"
    await second.put_if_absent("tile/0/000", b"tile")
    await second.close()


async def test_stale_temporary_files_are_cleaned_on_open_but_fresh_ones_kept(
        tmp_path: Path) -> None:
    FsStore(tmp_path)
    stale, fresh = tmp_path / ".tmp" / "stale", tmp_path / ".tmp" / "fresh"
    stale.write_bytes(b"from a writer that crashed yesterday")
    fresh.write_bytes(b"from a writer at work right now")
    yesterday = time.time() - 86400
    os.utime(stale, (yesterday, yesterday))
    await FsStore(tmp_path).close()
    assert not stale.exists() and fresh.exists()


async def test_a_temporary_file_renamed_while_a_store_opens_is_no_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another process writing to the same directory renames its temporary file into place
    between the listing of `.tmp` and the look at its age (seen in CI: a test opening the
    anchor's store while it published)."""
    await FsStore(tmp_path).close()
    renamed = tmp_path / ".tmp" / "renamed-by-another-writer"
    listed = Path.iterdir

    def listing(self: Path) -> Iterator[Path]:
        yield from listed(self)
        if self == tmp_path / ".tmp":
            yield renamed  # listed, then gone before its stat
    monkeypatch.setattr(Path, "iterdir", listing)
    await FsStore(tmp_path).close()


async def test_a_key_below_another_object_is_a_clear_error(tmp_path: Path) -> None:
    store = FsStore(tmp_path)
    await store.put_if_absent("a", b"object")
    with pytest.raises(StorageError, match="'a/b'"):
        await store.put_if_absent("a/b", b"below an object")
    assert await store.get("a") == b"object"
    await store.close()


async def test_many_objects_at_once_fsync_each_file_before_it_shows_and_each_directory_after(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`put_all_if_absent` keeps `put_if_absent`'s order (the data durable before its name shows,
    the name durable before the call returns) with one directory fsync per share, not per file."""
    store = FsStore(tmp_path, threads=3)
    await store.put_if_absent("tile/0/x000/000", b"made before")  # the directories exist
    await store.put_if_absent("tile/1/000", b"made before")
    events: list[tuple[str, str]] = []
    real_fsync, real_link = os.fsync, os.link

    def recording_fsync(fd: int) -> None:
        real_fsync(fd)
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))

    def recording_link(src: str | Path, dst: str | Path) -> None:
        events.append(("link", f"{src} {dst}"))
        real_link(src, dst)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    monkeypatch.setattr(os, "link", recording_link)
    folders = ("tile/0/x000", "tile/1")
    items = [(f"{folders[k % 2]}/{k + 1:03d}", f"tile {k}".encode()) for k in range(24)]
    await store.put_all_if_absent(items)
    links: list[tuple[int, str, str]] = []
    for i, (kind, value) in enumerate(events):
        if kind == "link":
            src, dst = value.split(" ", 1)
            links.append((i, src, dst))
    assert sorted(Path(dst) for _, _, dst in links) == sorted(tmp_path / k for k, _ in items)
    synced = {value: i for i, (kind, value) in enumerate(events) if kind == "fsync"}  # the last of each
    for i, src, dst in links:
        assert events.index(("fsync", src)) < i  # the data was durable before the name showed
        assert synced[str(Path(dst).parent)] > i  # and the name before the call returned
    wanted = {str(tmp_path / f) for f in folders}
    directories = [value for kind, value in events if kind == "fsync" and value in wanted]
    assert set(directories) == wanted
    assert len(directories) <= 2 * 3  # at most each directory per share: 24 with a call per file
    for key, data in items:
        assert await store.get(key) == data
    assert files_under(tmp_path / ".tmp") == []
    await store.close()


async def test_a_read_is_not_held_behind_a_round_of_writes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`put_all_if_absent` leaves one thread of the pool free: a tile read while a round's
    writes are stuck on the disk is answered."""
    store = FsStore(tmp_path, threads=2)
    await store.put_if_absent("tile/0/000", b"published")
    real_write_tmp = store._write_tmp
    disk = threading.Event()  # set: the stuck disk answers again
    writing = threading.Event()

    def stuck_write_tmp(data: bytes) -> Path:
        writing.set()
        disk.wait(timeout=30)
        return real_write_tmp(data)

    monkeypatch.setattr(store, "_write_tmp", stuck_write_tmp)
    round_ = asyncio.create_task(store.put_all_if_absent([(f"tile/0/{i:03d}", b"t") for i in range(1, 80)]))
    try:
        assert await asyncio.to_thread(writing.wait, 10)
        assert await asyncio.wait_for(store.get("tile/0/000"), timeout=10) == b"published"
        assert not round_.done()
    finally:
        disk.set()
    await round_
    assert len([k async for k in store.list("tile/0/")]) == 80
    await store.close()


async def test_many_objects_at_once_name_the_key_that_failed(tmp_path: Path) -> None:
    store = FsStore(tmp_path)
    await store.put_if_absent("a", b"object")
    with pytest.raises(StorageError, match="'a/b'"):
        await store.put_all_if_absent([("x", b"1"), ("a/b", b"below an object"), ("y", b"2")])
    assert await store.get("a") == b"object"
    assert files_under(tmp_path / ".tmp") == []
    await store.close()


async def test_a_plain_put_cannot_land_inside_a_conditional_write_and_be_lost(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another writer's `put` (another process: its own store) issued while `put_if_version` is
    between its check and its replacement waits for it, as an S3 server orders the two: it
    lands after, and is not overwritten unseen (the checkpoint of another anchor must stay
    visible, so that the next conditional write finds the log taken)."""
    store, other = FsStore(tmp_path), FsStore(tmp_path)
    v0 = await store.put_if_version("checkpoint", b"v0", None)
    real_write_tmp = store._write_tmp
    theirs: list[threading.Thread] = []

    def write_tmp(data: bytes) -> Path:  # inside put_if_version, after its check
        thread = threading.Thread(target=lambda: asyncio.run(other.put("checkpoint", b"theirs")))
        thread.start()
        thread.join(timeout=0.5)  # enough for the put to land, were it not held back
        theirs.append(thread)
        return real_write_tmp(data)

    monkeypatch.setattr(store, "_write_tmp", write_tmp)
    mine = await store.put_if_version("checkpoint", b"mine", v0)
    await asyncio.to_thread(theirs[0].join, 10)
    assert not theirs[0].is_alive()
    assert await store.get("checkpoint") == b"theirs"
    with pytest.raises(ConflictError):
        await store.put_if_version("checkpoint", b"next", mine)
    await store.close()
    await other.close()


def test_two_processes_racing_on_a_version_cannot_both_win(tmp_path: Path) -> None:
    """Two stores on one directory, each in its own thread and event loop, stand for two
    processes: the lock file, not the event loop, must keep the swap atomic."""
    asyncio.run(_seed(tmp_path))
    results: list[object] = []

    def writer(n: int) -> None:
        async def go() -> None:
            store = FsStore(tmp_path)
            try:
                start = await store.get_versioned("checkpoint")
                barrier.wait()
                results.append(await store.put_if_version("checkpoint", b"by %d" % n,
                                                          start.version))
            except ConflictError as e:
                results.append(e)
            finally:
                await store.close()
        asyncio.run(go())

    for _ in range(10):
        asyncio.run(_seed(tmp_path))
        results.clear()
        barrier = threading.Barrier(4)
        threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sum(isinstance(r, str) for r in results) == 1, results


async def _seed(root: Path) -> None:
    store = FsStore(root)
    await store.put("checkpoint", b"size 0")
    await store.close()


async def test_rocks_keeps_synced_writes_across_a_restart(tmp_path: Path) -> None:
    index = RocksIndex.open(tmp_path / "db")
    await index.write_batch({b"head": b"7", b"q/1": b"\x00\xff"}, sync=True)
    assert await index.compare_and_swap(b"head", b"7", b"8")
    await index.close()
    reopened = RocksIndex.open(tmp_path / "db")
    assert await reopened.multi_get([b"head", b"q/1"]) == [b"8", b"\x00\xff"]
    await reopened.close()


async def test_rocks_flushes_a_full_memtable_to_table_files_in_the_background(tmp_path: Path) -> None:
    """The memtable is MEMTABLE_BYTES (small: inserts into a small skip list cost less of the
    GIL), so rows past it reach table files without any flush asked for; every row is read back."""
    index = RocksIndex.open(tmp_path / "db")
    try:
        rows, step = 3 * MEMTABLE_BYTES // 64, 20_000  # ~64 bytes a row in the memtable
        for first in range(0, rows, step):
            puts = {b"t" + os.urandom(16) + n.to_bytes(8, "big"): os.urandom(16) for n in range(step)}
            head = None if first == 0 else first.to_bytes(8, "big")
            await index.compare_and_swap(b"h", head, (first + step).to_bytes(8, "big"), puts=puts)
        deadline = time.monotonic() + 30
        while not list((tmp_path / "db").glob("*.sst")) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert list((tmp_path / "db").glob("*.sst")), "no table file: the memtable was never full"
        assert len([k async for k, _ in index.scan(b"t")]) == -(-rows // step) * step
    finally:
        await index.close()


async def test_rocks_refuses_a_second_opener_naming_the_path(tmp_path: Path) -> None:
    index = RocksIndex.open(tmp_path / "db")
    try:
        with pytest.raises(StorageError, match=str(tmp_path / "db")):
            RocksIndex.open(tmp_path / "db")
    finally:
        await index.close()


async def test_rocks_calls_leave_the_event_loop_free(tmp_path: Path) -> None:
    index = RocksIndex.open(tmp_path / "db")
    main = threading.get_ident()
    seen: list[int] = []
    assert index._db is not None, "a freshly opened index holds its database"
    real_write = index._db.write

    def spy(*args: object) -> None:
        seen.append(threading.get_ident())
        real_write(*args)  # type: ignore[arg-type]

    index._db = _Spy(index._db, write=spy)  # type: ignore[assignment]
    await index.write_batch({b"k": b"v"})
    assert seen and main not in seen
    await index.close()


async def test_rocks_synced_writes_sync_the_log_with_the_gil_let_go(tmp_path: Path) -> None:
    """rocksdict holds the GIL through `write`, its fsync included, and lets it go in
    `flush_wal`: a synced write is a write then `flush_wal(True)` (RocksDB's SyncWAL), never a
    write with sync on; an unsynced one syncs nothing."""
    index = RocksIndex.open(tmp_path / "db")
    assert index._db is not None, "a freshly opened index holds its database"
    db = index._db
    calls: list[tuple[str, bool]] = []

    def write(batch: WriteBatch, options: WriteOptions) -> None:
        calls.append(("write", bool(options.sync)))
        db.write(batch, options)

    def flush_wal(sync: bool) -> None:
        calls.append(("flush_wal", sync))
        db.flush_wal(sync)

    index._db = _Spy(db, write=write, flush_wal=flush_wal)  # type: ignore[assignment]
    await index.write_batch({b"head": b"1"}, sync=True)
    assert await index.compare_and_swap(b"head", b"1", b"2")
    assert calls == [("write", False), ("flush_wal", True)] * 2
    calls.clear()
    await index.write_batch({b"k": b"v"}, sync=False)
    assert not await index.compare_and_swap(b"head", b"1", b"3")  # refused: nothing written
    assert calls == [("write", False)]
    index._db = db
    await index.close()
    reopened = RocksIndex.open(tmp_path / "db")
    assert await reopened.multi_get([b"head", b"k"]) == [b"2", b"v"]
    await reopened.close()


class _Spy:
    def __init__(self, inner: object, **overrides: object) -> None:
        self._inner, self._overrides = inner, overrides

    def __getattr__(self, name: str) -> object:
        return self._overrides.get(name) or getattr(self._inner, name)
