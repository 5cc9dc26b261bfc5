"""The tenant-private index in RocksDB: which tenant notarized which digest, at which index, with
which salt, stored so that a copy of the index alone reveals no notarized digest (docs/privacy.md).

One row per notarization::

    key   = "t" || name || u64be(index)                                   25 bytes
    name  = AES-256-CMAC(K_names, BLAKE3(u8(len(tenant)) || tenant)[:16] || multihash)
    value = salt XOR AES-256(K_salts, u64be(0) || u64be(index))           16 bytes

- ``K_names = derive_key("notar 2026 tenant index row names v1", index key)`` (BLAKE3's
  key-derivation mode; AES-CMAC is NIST SP 800-38B). Without the index key a name is 16
  pseudorandom bytes: it says nothing about the tenant or the digest, and no guess can be checked
  against it. Every notarization of one digest by one tenant has the same name, so a prefix scan
  finds them all, earliest index first.
- ``K_salts = BLAKE3-keyed(derive_key("notar 2026 tenant index salts v1", index key), origin)``,
  one key per log: the pad is AES-256 in counter mode with the entry's index as the counter. An
  index is given once in a log, so no pad is used twice, and logs sharing the index key (shards)
  have different keys for the same index.

A value is bound to its row by the index in the key: moved to another row it decrypts, under
another pad, to a wrong salt. That is not detected here, but no false receipt can come of it:
the salt rebuilds the log entry, SHA-256("notar.entry.v2" || 0 || salt || multihash || subject),
and a wrong salt gives an entry that is not the one at that index, so the receipt's `entry` and
`inclusion` checks fail. An authenticated cipher per row would add a per-row call on the
sequencer's path for no receipt that this does not already refuse.

`rows` is on the sequencer's hot path (its worker thread, up to 20,000 rows a batch), and a
Python call per row costs about a microsecond here whatever it does (a keyed BLAKE3 per row made
`rows` 4-5 times slower than the unkeyed index it replaces). So a batch is computed with a few
calls over whole buffers: the four CBC steps of every row's CMAC advance together, one AES-ECB
call per step, the blocks laid out by strided slices, and all the pads are one AES call and one
XOR. `prefix` computes the same names with `cryptography`'s CMAC, one at a time; the tests check
that both agree.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

import blake3
from cryptography.hazmat.primitives import cmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from services.common.index_key import derive
from services.model import check_tenant

TENANT = b"t"
BLOCK = 16
NAME_SIZE = 16
SALT_SIZE = 16
MULTIHASH_SIZE = 34
ROW_KEY_SIZE = len(TENANT) + NAME_SIZE + 8
NAMES_CONTEXT = "notar 2026 tenant index row names v1"
SALTS_CONTEXT = "notar 2026 tenant index salts v1"


class TenantIndex:
    """The rows of one log's tenant index, under `key` (the index key) and `origin` (the log's).

    Pure: it builds and reads rows; the sequencer writes and scans them."""

    def __init__(self, key: bytes, *, origin: str) -> None:
        self._names = algorithms.AES(derive(key, NAMES_CONTEXT))
        self._salts = algorithms.AES(blake3.blake3(origin.encode(), key=derive(key, SALTS_CONTEXT)).digest())
        # CMAC's subkey for a last block that is padded (a message of 50 bytes), SP 800-38B §6.1,
        # XORed into that block's constant part (the padding) here, into its 2 multihash bytes
        # through translation tables in `_cmac`.
        k2 = _double(_double(_ecb(self._names, bytes(BLOCK))))
        self._last = _xor(b"\x00\x00\x80" + bytes(BLOCK - 3), k2)
        self._k2_tables = tuple(bytes(b ^ k2[i] for b in range(256)) for i in (0, 1))

    def __repr__(self) -> str:
        return "TenantIndex(…)"  # never the keys

    def names(self, tenants: Sequence[str], multihashes: Sequence[bytes]) -> bytes:
        """The row names (16 bytes each, concatenated) of `tenants[k]` notarizing `multihashes[k]`
        (34 bytes), as `rows` computes them; ValueError on a bad tenant name or multihash."""
        n = len(tenants)
        joined = b"".join(multihashes)
        if len(multihashes) != n or len(joined) != MULTIHASH_SIZE * n:
            raise ValueError(f"{n} tenants need {n} multihashes of {MULTIHASH_SIZE} bytes")
        return self._cmac(tenants, joined, n) if n else b""

    def rows(
        self,
        tenants: Sequence[str],
        multihashes: Sequence[bytes],
        indices: Sequence[int],
        salts: Sequence[bytes],
        *,
        names: bytes | None = None,
    ) -> dict[bytes, bytes]:
        """The RocksDB puts of a batch: row k is `tenants[k]` notarizing `multihashes[k]` (34
        bytes) at `indices[k]` with `salts[k]` (16 bytes). ValueError on a bad tenant name.
        `names`, when given, are these rows' names as `names(tenants, multihashes)` returned them
        (the sequencer has them from the repeats cap): they are used as they are, not computed."""
        n = len(tenants)
        if not n == len(multihashes) == len(indices) == len(salts):
            raise ValueError(
                f"{n} tenants, {len(multihashes)} multihashes, {len(indices)} indices, {len(salts)} salts"
            )
        if not n:
            return {}
        joined, secrets = b"".join(multihashes), b"".join(salts)
        if len(joined) != MULTIHASH_SIZE * n or len(secrets) != SALT_SIZE * n:
            raise ValueError(f"multihashes must be {MULTIHASH_SIZE} bytes and salts {SALT_SIZE}")
        if names is None:
            names = self._cmac(tenants, joined, n)
        elif len(names) != NAME_SIZE * n:
            raise ValueError(f"{n} rows need {n} names of {NAME_SIZE} bytes, not {len(names)} bytes")
        places = struct.pack(f">{n}Q", *indices)
        sealed = _xor(secrets, self._pads(places, n))
        # Each row as one record, key then value, so that one sort of bytes puts them in key
        # order: RocksDB inserts a batch's keys into its memtable (a skip list) about twice as
        # fast in order as at random (fewer cache misses), more than the sort costs.
        size = ROW_KEY_SIZE + SALT_SIZE
        records = bytearray(size * n)
        records[0::size] = TENANT * n
        _gather(records, 1, size, names, 0, NAME_SIZE, NAME_SIZE)
        _gather(records, 1 + NAME_SIZE, size, places, 0, 8, 8)
        _gather(records, ROW_KEY_SIZE, size, sealed, 0, SALT_SIZE, SALT_SIZE)
        ordered = b"".join(sorted(cut(bytes(records), size)))
        flat = struct.Struct(f"{ROW_KEY_SIZE}s{SALT_SIZE}s" * n).unpack(ordered)
        return dict(zip(flat[0::2], flat[1::2], strict=True))

    def prefix(self, tenant: str, multihash: bytes) -> bytes:
        """The scan prefix of every row of `tenant`'s notarizations of `multihash`; ValueError
        when the tenant name is not valid."""
        mac = cmac.CMAC(self._names)
        mac.update(_tenant_block(tenant) + multihash)
        return TENANT + mac.finalize()

    def decode(self, key: bytes, value: bytes) -> tuple[int, bytes]:
        """(index, salt) of one row; ValueError when it is not a row of this layout."""
        if len(key) != ROW_KEY_SIZE or not key.startswith(TENANT) or len(value) != SALT_SIZE:
            raise ValueError(f"not a tenant index row: a {len(key)}-byte key with a {len(value)}-byte value")
        place = key[-8:]
        return int.from_bytes(place, "big"), _xor(value, self._pads(place, 1))

    def _pads(self, places: bytes, n: int) -> bytes:
        """AES-256(K_salts, u64be(0) || place) for each 8-byte place."""
        counters = bytearray(BLOCK * n)
        _gather(counters, 8, BLOCK, places, 0, 8, 8)
        return _ecb(self._salts, counters)

    def _cmac(self, tenants: Sequence[str], multihashes: bytes, n: int) -> bytes:
        """The names of n rows (16n bytes): the CMAC of block 1 = the tenant's block, blocks
        2-3 = the multihash's first 32 bytes, block 4 = its last 2 bytes, padded, XOR K2."""
        firsts = {t: _ecb(self._names, _tenant_block(t)) for t in set(tenants)}
        chain = b"".join(map(firsts.__getitem__, tenants))
        second, third = bytearray(BLOCK * n), bytearray(BLOCK * n)
        _gather(second, 0, BLOCK, multihashes, 0, MULTIHASH_SIZE, BLOCK)
        _gather(third, 0, BLOCK, multihashes, BLOCK, MULTIHASH_SIZE, BLOCK)
        last = bytearray(self._last * n)
        for i, table in enumerate(self._k2_tables):
            last[i::BLOCK] = multihashes[2 * BLOCK + i :: MULTIHASH_SIZE].translate(table)
        encrypt = Cipher(self._names, modes.ECB()).encryptor()  # noqa: S305 - CBC steps, see above
        for block in (second, third, last):
            chain = encrypt.update(_xor(chain, block))
        return chain


def _tenant_block(tenant: str) -> bytes:
    name = check_tenant(tenant).encode()
    return blake3.blake3(bytes([len(name)]) + name).digest(BLOCK)


def _ecb(key: algorithms.AES, data: bytes | bytearray) -> bytes:
    encryptor = Cipher(key, modes.ECB()).encryptor()  # noqa: S305 - one block per counter or chain
    return encryptor.update(data) + encryptor.finalize()


def _xor(a: bytes, b: bytes | bytearray) -> bytes:
    return (int.from_bytes(a, "little") ^ int.from_bytes(b, "little")).to_bytes(len(a), "little")


def _double(block: bytes) -> bytes:
    """Multiplication by x in GF(2^128), SP 800-38B's subkey step."""
    x = int.from_bytes(block, "big") << 1
    return ((x & ((1 << 128) - 1)) ^ (0x87 if x >> 128 else 0)).to_bytes(BLOCK, "big")


def _gather(
    dst: bytearray, dst_at: int, dst_stride: int, src: bytes, src_at: int, src_stride: int, width: int
) -> None:
    """Copy `width` bytes from `src_at` of each `src_stride`-byte record of `src` to `dst_at` of
    each `dst_stride`-byte record of `dst`: one strided slice per byte column, not one per row."""
    for i in range(width):
        dst[dst_at + i :: dst_stride] = src[src_at + i :: src_stride]


def cut(data: bytes, size: int) -> tuple[bytes, ...]:
    """`data` cut into `size`-byte pieces (names, keys, values of a batch), in one call."""
    return struct.Struct(f"{size}s" * (len(data) // size)).unpack(data)
