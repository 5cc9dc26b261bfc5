"""Index on RocksDB through rocksdict, in raw mode (bytes in, bytes out).

RocksDB calls block, so they run in a small thread pool; writes, including the read-compare-write
of ``compare_and_swap``, are serialised by one lock, which is enough because RocksDB itself lets
only one process open the database.

A write that fails (a full disk: ENOSPC) leaves RocksDB in a "background error" state in which
it refuses every later write, even once space is freed, until the database is reopened (rocksdict
does not expose ``Resume``). So after a failed write the index reopens the database before the
next write, once that can work: at most once a second, and only when the disk has room for the
flush that reopening does (reopening on a full disk fails, and the old handle still serves reads
meanwhile). Writes in between fail at once with a transient ``StorageError``. What RocksDB had
acknowledged was fsynced to its write-ahead log and is replayed by the reopening.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TypeVar, cast

from rocksdict import (
    BlockBasedOptions,
    BottommostLevelCompaction,
    Checkpoint,
    CompactOptions,
    Options,
    Rdict,
    WriteBatch,
    WriteOptions,
)

from storage.errors import StorageError

T = TypeVar("T")
_SCAN_PAGE = 512
_REOPEN_EVERY_S = 1.0
_REOPEN_MARGIN = 4 * 1024 * 1024  # free bytes wanted beyond the write-ahead logs to reopen
MEMTABLE_BYTES = 8 * 1024 * 1024  # RocksDB's write buffer (see `_options`)
log = logging.getLogger("notar.storage")


def _options() -> Options:
    options = Options(raw_mode=True)
    options.create_if_missing(True)
    # The MANIFEST logs each table file's first and last key. Rewritten at every change of the
    # file set (a flush, a compaction: a snapshot of the live files' names and boundary keys,
    # a few hundred KB at most), it keeps no key of a file that is gone: after `compact`, a
    # deleted key is nowhere in the directory. RocksDB's default rewrites it every 1 GB.
    options.set_max_manifest_file_size(1)
    options.set_manifest_preallocation_size(64 * 1024)
    # A memtable of 8 MB, not RocksDB's 64 MB. rocksdict holds the GIL through a write's memtable
    # inserts, and an insert into a skip list of random keys costs its cache misses: ~1.4 µs a
    # row into a full 64 MB memtable, ~0.9 at 16 MB, ~0.5 at 4 MB (rows of the tenant index,
    # measured apart). The sequencer writes two rows a digest: 1.05-1.11x bulk throughput, from
    # 90 s to 8 s runs (BENCHMARKS.md). Flushes and compactions run in RocksDB's own threads,
    # without the GIL; at 60,000 digests a second a memtable fills in about a second.
    options.set_write_buffer_size(MEMTABLE_BYTES)
    # Bloom filters over whole keys, in table files (10 bits a key: ~1 % false positives) and in
    # the memtable (2 % of its size: ~12 bits a key when full): a point read of a key that is
    # not there, which is what the repeats cap's count of a new digest is, skips the skip-list
    # search and the table files' blocks (~2.5 µs -> ~0.7 µs a key). Prefix scans (the tenant
    # index's look-ups) do not use them and are unchanged.
    table = BlockBasedOptions()
    table.set_bloom_filter(10, False)
    options.set_block_based_table_factory(table)
    options.set_memtable_prefix_bloom_ratio(0.02)
    options.set_memtable_whole_key_filtering(True)
    return options


class _Gate:
    """Any number of operations at once, or the reopening of the database alone."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._active = 0
        self._exclusive = False

    @contextmanager
    def shared(self) -> Iterator[None]:
        with self._cond:
            self._cond.wait_for(lambda: not self._exclusive)
            self._active += 1
        try:
            yield
        finally:
            with self._cond:
                self._active -= 1
                self._cond.notify_all()

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._cond:
            self._cond.wait_for(lambda: not self._exclusive)
            self._exclusive = True
            self._cond.wait_for(lambda: self._active == 0)
        try:
            yield
        finally:
            with self._cond:
                self._exclusive = False
                self._cond.notify_all()


class RocksIndex:
    """``Index`` on a RocksDB directory; ``open`` creates it when missing."""

    def __init__(self, db: Rdict, path: Path, *, threads: int = 4, options: Options | None = None) -> None:
        self._db: Rdict | None = db
        self.path = path
        self._options = options or _options()
        self._gate = _Gate()
        self._broken: str | None = None  # why the database must be reopened before a write
        self._reopen_at = 0.0  # monotonic: no reopening before this
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="notar-rocks")
        self._write_lock = threading.Lock()
        self._nosync = WriteOptions()  # every write; a synced one then syncs the log (_durable_write)
        self._nosync.sync = False

    @classmethod
    def open(cls, path: str | Path, *, threads: int = 4) -> RocksIndex:
        """Open (creating) the database at ``path``; raise ``StorageError`` if it cannot, e.g.
        because another process holds it."""
        path = Path(path).absolute()
        options = _options()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            db = Rdict(str(path), options)
        except Exception as e:  # rocksdict raises plain Exception carrying RocksDB's status
            hint = "; is another notar process using it?" if "lock" in str(e).lower() else ""
            raise StorageError(f"cannot open RocksDB at {path}: {e}{hint}",
                               location=str(path)) from e
        return cls(db, path, threads=threads, options=options)

    async def get(self, key: bytes) -> bytes | None:
        return await self._run("get", lambda db: db.get(key))

    async def multi_get(self, keys: Sequence[bytes]) -> list[bytes | None]:
        if not keys:
            return []
        def read(db: Rdict) -> list[bytes | None]:
            # rocksdict's list get: RocksDB's MultiGet, in one call holding the GIL. With the
            # bloom filters above, ~0.9 µs a key that is not there and ~2.1 one that is, against
            # ~1.4 and ~2.8 for a get per key (2,000 sorted keys, 3 million digests' rows).
            return cast("list[bytes | None]", db.get(list(keys)))
        return await self._run("multi_get", read)

    async def write_batch(self, puts: Mapping[bytes, bytes], deletes: Iterable[bytes] = (), *,
                          sync: bool = True) -> None:
        batch = self._batch(puts, deletes)
        await self._run("write_batch", lambda db: self._write(db, batch, sync), write=True)

    async def scan(self, prefix: bytes, *, start: bytes | None = None,
                   limit: int | None = None) -> AsyncIterator[tuple[bytes, bytes]]:
        position = max(prefix, start or prefix)
        remaining = limit
        while remaining is None or remaining > 0:
            page_size = _SCAN_PAGE if remaining is None else min(_SCAN_PAGE, remaining)
            page = await self._run("scan", functools.partial(self._page, prefix=prefix,
                                                             position=position, n=page_size))
            for item in page:
                yield item
            if len(page) < page_size:
                return
            position = page[-1][0] + b"\x00"
            if remaining is not None:
                remaining -= len(page)

    async def compare_and_swap(self, key: bytes, expected: bytes | None, new: bytes, *,
                               puts: Mapping[bytes, bytes] | None = None,
                               deletes: Iterable[bytes] = (), sync: bool = True) -> bool:
        batch = self._batch({**(puts or {}), key: new}, [d for d in deletes if d != key])

        def swap(db: Rdict) -> bool:
            with self._write_lock:
                if db.get(key) != expected:
                    return False
                self._durable_write(db, batch, sync)
                return True
        return await self._run("compare_and_swap", swap, write=True)

    async def compact(self, ranges: Sequence[tuple[bytes, bytes]]) -> None:
        """Flush the memtable (its write-ahead log is then dropped), then compact each range down
        to the last level, where a deletion and the value it deletes are both dropped. RocksDB
        releases the GIL meanwhile; other writes go on (the compaction is not exclusive)."""
        options = CompactOptions()
        options.set_exclusive_manual_compaction(False)
        options.set_bottommost_level_compaction(BottommostLevelCompaction.force_optimized())

        def compact(db: Rdict) -> None:
            db.flush(True)
            for start, end in ranges:
                db.compact_range(start, end, options)
        await self._run("compact", compact, write=True)

    async def checkpoint(self, path: Path) -> None:
        """RocksDB's checkpoint: the memtable flushed, then the live table files hard-linked
        (copied across file systems) and the MANIFEST and CURRENT copied into ``path``; an
        openable database of its own, which ``open`` reads."""
        await self._run("checkpoint", lambda db: Checkpoint(db).create_checkpoint(str(Path(path).absolute())))

    async def close(self) -> None:
        """Close the database. After a failed write RocksDB's close reports that failure again;
        it is only logged then: what RocksDB acknowledged is in its fsynced write-ahead log."""
        def close(db: Rdict) -> None:
            try:
                db.close()
            except Exception:
                if self._broken is None:
                    raise
                log.warning("RocksDB at %s closed after a failed write (%s)", self.path, self._broken)
            self._db = None
        if self._db is not None:
            await self._run("close", close)
        self._pool.shutdown(wait=True)

    # -- internals (run in the pool) ---------------------------------------------------------

    @staticmethod
    def _batch(puts: Mapping[bytes, bytes], deletes: Iterable[bytes]) -> WriteBatch:
        batch = WriteBatch(raw_mode=True)
        deque(map(batch.put, puts.keys(), puts.values()), maxlen=0)  # a loop in C: ~40,000 puts a batch
        for k in deletes:  # after the puts, so that a key both put and deleted ends up deleted
            batch.delete(k)
        return batch

    def _write(self, db: Rdict, batch: WriteBatch, sync: bool) -> None:
        with self._write_lock:
            self._durable_write(db, batch, sync)

    def _durable_write(self, db: Rdict, batch: WriteBatch, sync: bool) -> None:
        """Write ``batch``; with ``sync``, return once the write-ahead log is fsynced. Called
        under the write lock. rocksdict holds the GIL through ``write``, fsync included, which
        stalls every thread of the process for the disk; ``flush_wal`` lets it go. So the batch
        is written to the log (in the page cache) without a sync, then the log is synced:
        RocksDB's ``FlushWAL(sync=true)``, i.e. ``SyncWAL``. The same durability as a synced
        write, but the rows are readable a moment before they are durable: callers acknowledge
        nothing before this returns."""
        db.write(batch, self._nosync)
        if sync:
            db.flush_wal(True)

    @staticmethod
    def _page(db: Rdict, *, prefix: bytes, position: bytes, n: int) -> list[tuple[bytes, bytes]]:
        it = db.iter()
        it.seek(position)
        page: list[tuple[bytes, bytes]] = []
        while len(page) < n and it.valid():
            key = it.key()
            if not key.startswith(prefix):
                break
            page.append((key, it.value()))
            it.next()
        return page

    def _guarded(self, op: str, call: Callable[[Rdict], T], write: bool) -> T:
        """``call`` on the open database, reopened first when a write broke it; a failed write
        marks it broken."""
        if self._db is None or (write and self._broken is not None):
            self._reopen(op)
        with self._gate.shared():
            db = self._db
            if db is None:
                raise StorageError(f"RocksDB {op} at {self.path} failed: the database is closed",
                                   location=str(self.path))
            try:
                return call(db)
            except (TypeError, ValueError):
                raise
            except Exception as e:
                if write and self._broken is None:
                    self._broken = str(e)
                raise

    def _reopen(self, op: str) -> None:
        with self._gate.exclusive():
            if self._db is not None and self._broken is None:
                return  # another call reopened it meanwhile
            now = time.monotonic()
            free, need = _free_bytes(self.path), _wal_bytes(self.path) + _REOPEN_MARGIN
            if now < self._reopen_at or free < need:
                raise StorageError(
                    f"RocksDB {op} at {self.path} failed: an earlier write failed ({self._broken}); "
                    f"the database is reopened once {need} bytes are free there ({free} now)",
                    location=str(self.path), transient=True)
            self._reopen_at = now + _REOPEN_EVERY_S
            if self._db is not None:
                with suppress(Exception):  # it reports the failure that broke it again
                    self._db.close()
                self._db = None
            try:
                self._db = Rdict(str(self.path), self._options)
            except Exception as e:
                self._broken = f"reopening failed: {e}"
                raise StorageError(f"RocksDB {op} at {self.path} failed: cannot reopen it: {e}",
                                   location=str(self.path), transient=True) from e
            log.warning("RocksDB at %s reopened after a failed write (%s)", self.path, self._broken)
            self._broken = None

    async def _run(self, op: str, call: Callable[[Rdict], T], *, write: bool = False) -> T:
        try:
            return await asyncio.get_running_loop().run_in_executor(
                self._pool, self._guarded, op, call, write)
        except (StorageError, TypeError, ValueError):
            raise
        except Exception as e:
            raise StorageError(f"RocksDB {op} at {self.path} failed: {e}",
                               location=str(self.path)) from e


def _free_bytes(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def _wal_bytes(path: Path) -> int:
    """The size of the write-ahead logs: about what reopening flushes to new files."""
    with suppress(OSError):
        return sum(e.stat().st_size for e in os.scandir(path) if e.name.endswith(".log"))
    return 0
