"""Index on RocksDB through rocksdict, in raw mode (bytes in, bytes out).

RocksDB calls block, so they run in a small thread pool; writes, including the read-compare-write
of ``compare_and_swap``, are serialised by one lock, which is enough because RocksDB itself lets
only one process open the database.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar, cast

from rocksdict import Options, Rdict, WriteBatch, WriteOptions

from storage.errors import StorageError

T = TypeVar("T")
_SCAN_PAGE = 512


class RocksIndex:
    """``Index`` on a RocksDB directory; ``open`` creates it when missing."""

    def __init__(self, db: Rdict, path: Path, *, threads: int = 4) -> None:
        self._db = db
        self.path = path
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="notar-rocks")
        self._write_lock = threading.Lock()
        self._sync, self._nosync = WriteOptions(), WriteOptions()
        self._sync.sync = True
        self._nosync.sync = False

    @classmethod
    def open(cls, path: str | Path, *, threads: int = 4) -> RocksIndex:
        """Open (creating) the database at ``path``; raise ``StorageError`` if it cannot, e.g.
        because another process holds it."""
        path = Path(path).absolute()
        options = Options(raw_mode=True)
        options.create_if_missing(True)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            db = Rdict(str(path), options)
        except Exception as e:  # rocksdict raises plain Exception carrying RocksDB's status
            hint = "; is another notar process using it?" if "lock" in str(e).lower() else ""
            raise StorageError(f"cannot open RocksDB at {path}: {e}{hint}",
                               location=str(path)) from e
        return cls(db, path, threads=threads)

    async def get(self, key: bytes) -> bytes | None:
        return await self._run("get", lambda: self._db.get(key))

    async def multi_get(self, keys: Sequence[bytes]) -> list[bytes | None]:
        if not keys:
            return []
        def read() -> list[bytes | None]:
            return cast("list[bytes | None]", self._db.get(list(keys)))
        return await self._run("multi_get", read)

    async def write_batch(self, puts: Mapping[bytes, bytes], deletes: Iterable[bytes] = (), *,
                          sync: bool = True) -> None:
        batch = self._batch(puts, deletes)
        await self._run("write_batch", lambda: self._write(batch, sync))

    async def scan(self, prefix: bytes, *, start: bytes | None = None,
                   limit: int | None = None) -> AsyncIterator[tuple[bytes, bytes]]:
        position = max(prefix, start or prefix)
        remaining = limit
        while remaining is None or remaining > 0:
            page_size = _SCAN_PAGE if remaining is None else min(_SCAN_PAGE, remaining)
            page = await self._run("scan", functools.partial(self._page, prefix, position,
                                                             page_size))
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

        def swap() -> bool:
            with self._write_lock:
                if self._db.get(key) != expected:
                    return False
                self._db.write(batch, self._sync if sync else self._nosync)
                return True
        return await self._run("compare_and_swap", swap)

    async def close(self) -> None:
        await self._run("close", self._db.close)
        self._pool.shutdown(wait=True)

    # -- internals (run in the pool) ---------------------------------------------------------

    @staticmethod
    def _batch(puts: Mapping[bytes, bytes], deletes: Iterable[bytes]) -> WriteBatch:
        batch = WriteBatch(raw_mode=True)
        for k, v in puts.items():
            batch.put(k, v)
        for k in deletes:  # after the puts, so that a key both put and deleted ends up deleted
            batch.delete(k)
        return batch

    def _write(self, batch: WriteBatch, sync: bool) -> None:
        with self._write_lock:
            self._db.write(batch, self._sync if sync else self._nosync)

    def _page(self, prefix: bytes, position: bytes, n: int) -> list[tuple[bytes, bytes]]:
        it = self._db.iter()
        it.seek(position)
        page: list[tuple[bytes, bytes]] = []
        while len(page) < n and it.valid():
            key = it.key()
            if not key.startswith(prefix):
                break
            page.append((key, it.value()))
            it.next()
        return page

    async def _run(self, op: str, call: Callable[[], T]) -> T:
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, call)
        except (StorageError, TypeError, ValueError):
            raise
        except Exception as e:
            raise StorageError(f"RocksDB {op} at {self.path} failed: {e}",
                               location=str(self.path)) from e
