"""A frozen shard's batch times in the object store: the `state.BATCH_TIME` rows of its RocksDB
(batch_times.py), exported with its tenant index (frozen_index.export), so that look-ups of a frozen
shard carry each notarization's signed time as an active shard's do. Format
``notar.frozen-times.v1``::

    records = record*            record = u64be last index || u64be first index || u64be time
                                 (a row without its kind byte), sorted by last index
    fence   = MAGIC || u32be(block_rows) || u64be(rows) || u64be(last index of each block's first record)*

The records are written first, the fence after them (both before the frozen index's manifest): the
fence says the export is complete. A frozen index without one (a shard frozen before anchors kept
these times) has no times: its look-ups say None. A freeze taken again after a crash writes both
again, the same (the sealed index no longer changes); nothing changes them afterwards, erasure
neither (a time and an index range are public facts), so a reader keeps the fence once read. A
look-up then costs one range GET per batch it meets: the block that may hold the entry's batch and
the record after it.
"""

from __future__ import annotations

import bisect
from collections.abc import AsyncIterator, Iterable, Sequence

from services.anchor import state
from services.anchor.batch_times import RECORD, last_of, time_of
from services.model import Found
from services.published import layout
from storage.base import Index, ObjectStore
from storage.errors import CorruptedError, NotFoundError

MAGIC = b"notar.frozen-times.v1\n"
BLOCK_ROWS = 1024  # 24 KiB a block; the fence of a billion batches is 8 MiB
CHUNK_ROWS = 16 * 1024  # records per piece written in a stream
_HEAD = len(MAGIC) + 4 + 8


async def export_times(index: Index, store: ObjectStore, *, prefix: str, block_rows: int = BLOCK_ROWS) -> int:
    """Write the batch times of `index` (a sealed shard's RocksDB) under `prefix`: the records, then
    the fence; how many batches. CorruptedError when a row is not one of batch_times.py's."""
    fence = bytearray()
    rows = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal rows
        piece: list[bytes] = []
        async for key, value in index.scan(state.BATCH_TIME):
            record = key[len(state.BATCH_TIME) :] + value
            if len(record) != RECORD:
                raise CorruptedError(f"not a batch time row: a {len(key)}-byte key, {len(value)}-byte value")
            if rows % block_rows == 0:
                fence.extend(record[:8])
            piece.append(record)
            rows += 1
            if len(piece) == CHUNK_ROWS:
                yield b"".join(piece)
                piece = []
        yield b"".join(piece)

    await store.put_stream(layout.frozen_times_key(prefix), chunks(), immutable=False)
    head = MAGIC + block_rows.to_bytes(4, "big") + rows.to_bytes(8, "big")
    await store.put(layout.frozen_times_fence_key(prefix), head + bytes(fence))
    return rows


class FrozenTimes:
    """The batch times of the frozen log under `prefix`, read from the store (any number of
    processes at once)."""

    def __init__(self, store: ObjectStore, *, prefix: str) -> None:
        self._store, self._prefix = store, prefix
        self._fence: tuple[int, int, list[int]] | None = None  # block_rows, rows, first lasts
        self._read = False

    async def timed(self, found: Sequence[tuple[int, bytes]]) -> list[Found]:
        """The notarizations `found` (index, salt) with their batches' times."""
        times = await self.signed_times([i for i, _ in found])
        return [Found(i, salt, times.get(i)) for i, salt in found]

    async def signed_times(self, indices: Iterable[int]) -> dict[int, int]:
        """The time of the batch of each entry of `indices` that has one."""
        fence = await self._load()
        if fence is None:
            return {}
        block_rows, rows, lasts = fence
        blocks: dict[int, bytes] = {}
        out: dict[int, int] = {}
        for i in sorted(set(indices)):
            block = max(0, bisect.bisect_right(lasts, i) - 1)
            if block not in blocks:
                blocks[block] = await self._block(block, block_rows, rows)
            data = blocks[block]
            n = len(data) // RECORD
            at = bisect.bisect_left(range(n), i, key=lambda j: last_of(data[j * RECORD : (j + 1) * RECORD]))
            t = time_of(data[at * RECORD : (at + 1) * RECORD], i) if at < n else None
            if t is not None:
                out[i] = t
        return out

    async def _block(self, block: int, block_rows: int, rows: int) -> bytes:
        """The records of `block` and the one after it (the batch of an entry past the block's
        last record)."""
        start, end = block * block_rows * RECORD, min((block + 1) * block_rows + 1, rows) * RECORD
        if start >= end:
            return b""
        key = layout.frozen_times_key(self._prefix)
        data = await self._store.get_range(key, start, end)
        if len(data) != end - start:
            raise CorruptedError(f"{key} is shorter than its fence says")
        return data

    async def _load(self) -> tuple[int, int, list[int]] | None:
        if not self._read:
            key = layout.frozen_times_fence_key(self._prefix)
            try:
                data = await self._store.get(key)
            except NotFoundError:
                data = None
            if data is not None:
                block_rows = int.from_bytes(data[len(MAGIC) : len(MAGIC) + 4], "big")
                rows = int.from_bytes(data[len(MAGIC) + 4 : _HEAD], "big")
                lasts = [int.from_bytes(data[at : at + 8], "big") for at in range(_HEAD, len(data), 8)]
                if not data.startswith(MAGIC) or block_rows < 1 or len(lasts) != -(-rows // block_rows):
                    raise CorruptedError(f"{key} is not a fence of {MAGIC.decode().strip()}")
                self._fence = (block_rows, rows, lasts)
            self._read = True
        return self._fence
