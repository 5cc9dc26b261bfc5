"""The anchor's RocksDB layout: head, durable batch queue, tenant-private index, last checkpoint.

h                                   -> u64be number of entries assigned an index (the head)
b <u64be first index>               -> entry bundle of one batch (durable until published)
t <u8 len> <tenant> <multihash> <u64be index> -> salt (16 bytes, or empty when unsalted)
c                                   -> the last signed checkpoint note
s                                   -> u64be the latest clock cosignature time, written before
                                       any checkpoint carries it (times never go back)
l                                   -> this anchor's lease holder id
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


def tenant_prefix(tenant: str, multihash: bytes | None = None) -> bytes:
    name = check_tenant(tenant).encode()
    return TENANT + bytes([len(name)]) + name + (multihash or b"")


def tenant_key(tenant: str, multihash: bytes, index: int) -> bytes:
    return tenant_prefix(tenant, multihash) + u64(index)


def tenant_keys(tenants: Sequence[str], multihashes: Sequence[bytes], first: int) -> list[bytes]:
    """`tenant_key(tenants[k], multihashes[k], first + k)` for every k; each prefix built once."""
    prefixes = {t: tenant_prefix(t) for t in set(tenants)}
    indices = range(first, first + len(tenants))
    return [
        prefixes[t] + m + i.to_bytes(8, "big") for t, m, i in zip(tenants, multihashes, indices, strict=True)
    ]


def tenant_key_index(key: bytes) -> int:
    return int.from_bytes(key[-8:], "big")
