"""When each batch of a log was signed, and look-ups that carry it (`find`): the
`state.BATCH_TIME` rows of the anchor's RocksDB, one a batch, keyed by its last index, so that one
forward scan from an entry's index finds the batch that holds it. Look-ups carry these times
(`services.model.Found.signed_at`): across shards, the earliest notarization is the one whose batch
the clock signed first, then the lowest shard id (SPEC §10).

The time is the one the clock cosigned the batch's own checkpoint at (`Batch.timestamp`), the first
checkpoint to hold its entries; every later checkpoint carries a later time. The row is written in
the same atomic write as the batch, so every entry of the index has its time, except entries
sequenced before anchors wrote these rows: the scan then meets the row of a later batch, whose first
index is past the entry, and the entry's time is unknown (None). A batch that recovery signs again
after a crash keeps the time drawn for it when it was written: the one its callers' receipts
carried, if they got theirs.

A row is a public fact, an index range and a time: erasure leaves it, a backup copies it with the
rest of RocksDB, a frozen shard exports it to the object store (frozen_times.py).
"""

from __future__ import annotations

from collections.abc import Iterable

from merkle.digests import Digest
from services.anchor import state
from services.anchor.tenant_index import TenantIndex
from services.model import Found
from storage.base import Index

RECORD = 24  # a row without its kind byte: u64be last index || u64be first index || u64be time


def last_of(record: bytes) -> int:
    return int.from_bytes(record[:8], "big")


def time_of(record: bytes, index: int) -> int | None:
    """The time of the batch `record` (RECORD bytes) when it holds entry `index`, else None."""
    if int.from_bytes(record[8:16], "big") <= index <= last_of(record):
        return int.from_bytes(record[16:24], "big")
    return None


async def signed_times(index: Index, indices: Iterable[int]) -> dict[int, int]:
    """The time of the batch of each entry of `indices` that has one: a scan of one row for each
    batch met (entries of one batch share it)."""
    out: dict[int, int] = {}
    held: bytes | None = None  # the first row whose last index is at or after the entry's
    for i in sorted(set(indices)):
        if held is None or last_of(held) < i:
            start, kind = state.BATCH_TIME + state.u64(i), len(state.BATCH_TIME)
            rows = [k[kind:] + v async for k, v in index.scan(state.BATCH_TIME, start=start, limit=1)]
            if not rows:
                break  # no batch ends at or after entry i: no later entry has a row either
            held = rows[0]
        t = time_of(held, i)
        if t is not None:
            out[i] = t
    return out


async def find(
    index: Index, rows: TenantIndex, tenant: str, digest: Digest, *, limit: int | None, after: int | None
) -> list[Found]:
    """Where `tenant` notarized `digest` in the log of `index`, earliest first: a prefix scan of
    the tenant index (`rows`) from the row after `after`, stopped after `limit` rows, each with
    its batch's signed time."""
    prefix = rows.prefix(tenant, digest.multihash)
    if after is not None and after + 1 >= 1 << 64:
        return []  # no index comes after the last one
    start = prefix + (after + 1).to_bytes(8, "big") if after is not None else None
    found = [rows.decode(k, v) async for k, v in index.scan(prefix, start=start, limit=limit)]
    times = await signed_times(index, [i for i, _ in found])
    return [Found(i, salt, times.get(i)) for i, salt in found]
