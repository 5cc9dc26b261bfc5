"""The anchor's RocksDB layout: head, durable batch queue, tenant-private index, last checkpoint.

h                                   -> u64be number of entries assigned an index (the head)
b <u64be first index>               -> entry bundle of one batch, in index order (durable until
                                       published; recovery re-reads it)
t <name> <u64be index>              -> encrypted salt: the tenant index (tenant_index.py)
i <entry, 33 bytes>                 -> u64be index of a pre-made entry (a SCITT statement's):
                                       written with its batch (Sequencer.submit_entries)
k <entry, 33 bytes>                 -> its COSE receipt, written once signed (registrar.py)
n <name>                            -> u32be how many rows `t <name>` holds: REPEATS_MAX's count
                                       (repeats.py), written and erased with them
c                                   -> the last signed checkpoint note
s                                   -> u64be the latest clock cosignature time, written before
                                       any checkpoint carries it (times never go back)
l                                   -> this anchor's lease holder id
r                                   -> the backup this index was restored from (JSON), until the
                                       anchor started on it and replayed the erasure journal
e <8 random bytes>                  -> a row name whose erased rows await compaction (erasure.py)
T <u64be last index>                -> u64be first index || u64be time: one batch, entries first to
                                       last, and the time its checkpoint's clock cosignature
                                       carries; written with the batch, never erased (batch_times.py)

Every kind has its own first byte (tests/services/anchor/test_sequencer.py checks it): a prefix
scan of one kind meets no row of another.
"""

from __future__ import annotations

HEAD = b"h"
BATCH = b"b"
CHECKPOINT = b"c"
SIGNED_TIME = b"s"
HOLDER = b"l"
RESTORED = b"r"
ENTRY = b"i"  # not "e": erasure.PENDING scans that prefix
RECEIPT = b"k"
REPEATS = b"n"
BATCH_TIME = b"T"  # not "t": the tenant index's


def u64(n: int) -> bytes:
    return n.to_bytes(8, "big")


def batch_key(first: int) -> bytes:
    return BATCH + u64(first)


def batch_first(key: bytes) -> int:
    return int.from_bytes(key[len(BATCH) :], "big")


def entry_key(entry: bytes) -> bytes:
    return ENTRY + entry


def receipt_key(entry: bytes) -> bytes:
    return RECEIPT + entry


def batch_time(first: int, count: int, timestamp: int) -> tuple[bytes, bytes]:
    """The `BATCH_TIME` row of the batch of `count` entries from `first`, signed at `timestamp`."""
    return BATCH_TIME + u64(first + count - 1), u64(first) + u64(timestamp)
