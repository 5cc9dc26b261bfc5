"""Erasure from the tenant index (SPEC §1, `DELETE /v1/receipts/{digest}`): the rows of a
tenant's notarizations of a digest are deleted, then compacted out of RocksDB's files.

A RocksDB delete only writes a tombstone: the deleted value stays in the write-ahead log, the
memtable and the table files until a compaction meets it with its tombstone, which on a quiet log
may take months. So `forget` writes, in one fsynced batch, the deletes (the rows and their count
of repeats, `repeats`) and a mark
`e <8 random bytes> -> name` (the rows' keyed name); the eraser's task flushes and compacts the
key range of every marked name, deletes the marks and compacts those away too. `forget` waits
for that pass (at most `WAIT_S`), so that once it returns the rows are gone from the files, not
only hidden. A mark left by a crash is compacted after the next start. A retry after any failure
converges: the deletes are atomic, and a mark stays until its range is compacted.

Before the deletes, the erased rows' name goes to the erasure journal in the object store
(`layout.erasure_key`, private: the keyed name reveals nothing without the index key). A backup of
the index taken before the erasure still holds the rows; an index restored from it gets them
back, and `replay` erases them again (backup.py) before the anchor serves a look-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os

from services.anchor.repeats import COUNT, count_key
from services.anchor.tenant_index import TENANT, TenantIndex
from services.published import layout
from storage.base import Index, ObjectStore
from storage.errors import StorageError

log = logging.getLogger("notar.anchor")

PENDING = b"e"
BULK = 64  # marks from which the whole tenant index is compacted at once, not range by range
RETRY_S = 10.0  # after a failed compaction
WAIT_S = 10.0  # the longest `forget` waits for the compaction of its rows


def after(prefix: bytes) -> bytes:
    """The first key after every key that starts with `prefix` (which is not all 0xff)."""
    kept = prefix.rstrip(b"\xff")
    return kept[:-1] + bytes([kept[-1] + 1])


class Eraser:
    """Deletes tenant-index rows and keeps their values off disk: one per anchor, beside its
    sequencer, on the same index; `run` is its task."""

    def __init__(
        self,
        *,
        index: Index,
        tenant_index: TenantIndex,
        journal: ObjectStore | None = None,
        prefix: str = layout.LOG_PREFIX,
        bulk: int = BULK,
    ) -> None:
        self._index, self._rows, self._bulk = index, tenant_index, bulk
        self._journal, self._prefix = journal, prefix
        self._tombstones: ObjectStore | None = None  # a freezing shard's: `tombstone_too`
        self._wake = asyncio.Event()
        self._wake.set()  # marks a crash left behind are compacted first
        self._marked = 0  # marks this process wrote
        self._compacted = 0  # of those, the ones a finished pass covered
        self._passes = asyncio.Condition()

    async def forget(self, tenant: str, multihash: bytes, *, wait_s: float = WAIT_S) -> int:
        """Delete every row of `tenant`'s notarizations of `multihash` and return how many there
        were (0: none, nothing written), once they are compacted away or `wait_s` passed (they
        are deleted either way). ValueError when the tenant name is not valid."""
        return await self._forget(self._rows.prefix(tenant, multihash), wait_s=wait_s, journal=True)

    def tombstone_too(self, store: ObjectStore) -> None:
        """From now on, write each erased name's tombstone in the frozen index too, before the rows
        go (a freezing shard: its rows may be exported meanwhile, services.anchor.freeze)."""
        self._tombstones = store

    async def replay(self) -> int:
        """Erase again the rows of every name in the journal; how many rows there were."""
        if self._journal is None:
            return 0
        rows = 0
        async for key in self._journal.list(layout.erasures(self._prefix)):
            name = bytes.fromhex(key.rsplit("/", 1)[1])
            rows += await self._forget(TENANT + name, wait_s=0, journal=False)
        return rows

    async def _forget(self, prefix: bytes, *, wait_s: float, journal: bool) -> int:
        keys = [k async for k, _ in self._index.scan(prefix)]
        if not keys:
            return 0
        if journal and self._journal is not None:
            hex_name = prefix[len(TENANT) :].hex()
            await self._journal.put_if_absent(layout.erasure_key(hex_name, self._prefix), b"")
        if self._tombstones is not None:
            tombstone = layout.frozen_tombstone_key(prefix[len(TENANT) :].hex(), self._prefix)
            await self._tombstones.put_if_absent(tombstone, b"")
        mark = PENDING + os.urandom(8)
        name = prefix[len(TENANT) :]  # its count of repeats goes with the rows: it may be notarized anew
        await self._index.write_batch({mark: name}, [*keys, count_key(name)], sync=True)
        self._marked += 1
        mine = self._marked
        self._wake.set()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait_s), self._passes:
                await self._passes.wait_for(lambda: self._compacted >= mine)
        return len(keys)

    async def compact_pending(self) -> int:
        """One pass: compact the range of every marked name, delete those marks and compact them
        away too; how many marks it took."""
        seen = self._marked  # every mark counted here is in the index: the scan below sees it
        marks = dict([item async for item in self._index.scan(PENDING)])
        if marks:
            if len(marks) >= self._bulk:
                ranges = [(TENANT, after(TENANT)), (COUNT, after(COUNT))]
            else:
                keys = [k + name for name in marks.values() for k in (TENANT, COUNT)]
                ranges = [(k, after(k)) for k in keys]
            await self._index.compact(ranges)
            await self._index.write_batch({}, list(marks), sync=True)
            await self._index.compact([(PENDING, after(PENDING))])
        async with self._passes:
            self._compacted = max(self._compacted, seen)
            self._passes.notify_all()
        return len(marks)

    async def run(self) -> None:
        """Compact whatever `forget` marked, for as long as the anchor runs."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self.compact_pending()
            except StorageError as e:
                log.warning("compacting erased rows failed, retrying in %.0f s: %s", RETRY_S, e)
                await asyncio.sleep(RETRY_S)
                self._wake.set()
