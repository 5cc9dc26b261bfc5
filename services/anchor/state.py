"""The anchor's RocksDB layout: head, durable batch queue, tenant-private index, last checkpoint.

h                                   -> u64be number of entries assigned an index (the head)
b <u64be first index>               -> entry bundle of one batch, in index order (durable until
                                       published; recovery re-reads it)
t <u8 len> <tenant> <multihash> <u64be index> -> the notarization's 16-byte salt
c                                   -> the last signed checkpoint note
s                                   -> u64be the latest clock cosignature time, written before
                                       any checkpoint carries it (times never go back)
l                                   -> this anchor's lease holder id

The tenant index is three functions, `tenant_rows` (the puts of a batch), `tenant_prefix` (the
scan of one tenant's notarizations of one digest) and `tenant_row` (a row read back), each used at
one place of the sequencer.
"""

from __future__ import annotations

from collections.abc import Sequence

from services.model import check_tenant

HEAD = b"h"
BATCH = b"b"
TENANT = b"t"
CHECKPOINT = b"c"
SIGNED_TIME = b"s"
HOLDER = b"l"


def u64(n: int) -> bytes:
    return n.to_bytes(8, "big")


def batch_key(first: int) -> bytes:
    return BATCH + u64(first)


def batch_first(key: bytes) -> int:
    return int.from_bytes(key[len(BATCH) :], "big")


def tenant_prefix(tenant: str, multihash: bytes = b"") -> bytes:
    """Where `tenant`'s rows for `multihash` start (all its rows, without one)."""
    name = check_tenant(tenant).encode()
    return TENANT + bytes([len(name)]) + name + multihash


def tenant_rows(
    tenants: Sequence[str], multihashes: Sequence[bytes], indices: Sequence[int], salts: Sequence[bytes]
) -> dict[bytes, bytes]:
    """The index rows of a batch: row k says `tenants[k]` notarized `multihashes[k]` with
    `salts[k]` at `indices[k]`. Each tenant's prefix is built (and its name checked) once."""
    prefixes = {t: tenant_prefix(t) for t in set(tenants)}
    return {
        prefixes[t] + m + i.to_bytes(8, "big"): s
        for t, m, i, s in zip(tenants, multihashes, indices, salts, strict=True)
    }


def tenant_row(key: bytes, value: bytes) -> tuple[int, bytes]:
    """(index, salt) of a row read back."""
    return int.from_bytes(key[-8:], "big"), value
