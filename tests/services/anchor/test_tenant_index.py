"""The tenant index (services/anchor/tenant_index.py): rows built for a whole batch are the rows
of its documented construction, one by one; nothing in a row is the digest, the tenant or the
salt; rows of one log, tenant or key say nothing about another's."""

from __future__ import annotations

import os

import blake3
import pytest
from cryptography.hazmat.primitives import cmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import given, settings
from hypothesis import strategies as st

from services.anchor.tenant_index import NAMES_CONTEXT, SALTS_CONTEXT, TenantIndex

KEY = bytes(range(32))
ORIGIN = "test.notar/log"
TENANTS = st.sampled_from(["acme", "globex", "a", "x" * 64, "Initech.eu_1-2"])
MULTIHASHES = st.builds(
    lambda alg, value: alg + value,
    st.sampled_from([b"\x1e\x20", b"\x12\x20"]),
    st.binary(min_size=32, max_size=32),
)


def reference_row(
    key: bytes, origin: str, tenant: str, multihash: bytes, index: int, salt: bytes
) -> tuple[bytes, bytes]:
    """The row as docs/privacy.md writes it, with cryptography's CMAC and AES, one at a time."""
    names_key = blake3.blake3(key, derive_key_context=NAMES_CONTEXT).digest()
    salts_key = blake3.blake3(
        origin.encode(), key=blake3.blake3(key, derive_key_context=SALTS_CONTEXT).digest()
    ).digest()
    name = tenant.encode()
    mac = cmac.CMAC(algorithms.AES(names_key))
    mac.update(blake3.blake3(bytes([len(name)]) + name).digest(16) + multihash)
    place = index.to_bytes(8, "big")
    encrypt = Cipher(algorithms.AES(salts_key), modes.ECB()).encryptor()
    pad = encrypt.update(bytes(8) + place) + encrypt.finalize()
    return b"t" + mac.finalize() + place, bytes(a ^ b for a, b in zip(salt, pad, strict=True))


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(TENANTS, MULTIHASHES, st.binary(min_size=16, max_size=16)), min_size=1, max_size=40),
    st.integers(min_value=0, max_value=2**64 - 41),
    st.randoms(use_true_random=False),
)
def test_a_batch_is_its_rows_one_by_one(
    rows: list[tuple[str, bytes, bytes]], first: int, rnd: object
) -> None:
    index = TenantIndex(KEY, origin=ORIGIN)
    indices = list(range(first, first + len(rows)))
    rnd.shuffle(indices)  # type: ignore[attr-defined]  # entries are placed at random indices
    tenants, multihashes, salts = (list(c) for c in zip(*rows, strict=True))
    built = index.rows(tenants, multihashes, indices, salts)
    expected = dict(
        reference_row(KEY, ORIGIN, t, m, i, s)
        for t, m, i, s in zip(tenants, multihashes, indices, salts, strict=True)
    )
    assert built == expected
    assert list(built) == sorted(built), "the rows come in key order (RocksDB inserts them faster so)"
    for t, m, i, s in zip(tenants, multihashes, indices, salts, strict=True):
        key = index.prefix(t, m) + i.to_bytes(8, "big")
        assert len(key) == 25 and index.decode(key, built[key]) == (i, s)


def test_rows_hold_no_digest_tenant_or_salt() -> None:
    index = TenantIndex(KEY, origin=ORIGIN)
    value, salt = os.urandom(32), os.urandom(16)
    multihash = b"\x1e\x20" + value
    [(key, sealed)] = index.rows(["acme"], [multihash], [7], [salt]).items()
    for secret in (value[:8], value[8:16], value[16:24], value[24:], b"acme", salt[:8], salt[8:]):
        assert secret not in key + sealed


def test_names_and_pads_depend_on_tenant_key_and_origin() -> None:
    multihash, salt = b"\x12\x20" + bytes(32), bytes(16)
    base = TenantIndex(KEY, origin=ORIGIN)
    assert base.prefix("acme", multihash) != base.prefix("acme2", multihash)
    assert base.prefix("acme", multihash) != base.prefix("acme", b"\x1e\x20" + bytes(32))
    assert base.prefix("acme", multihash) != TenantIndex(os.urandom(32), origin=ORIGIN).prefix(
        "acme", multihash
    )
    # shards share the index key: the same index in two logs has two pads
    [(_, one)] = base.rows(["acme"], [multihash], [5], [salt]).items()
    [(_, other)] = TenantIndex(KEY, origin=ORIGIN + "/1").rows(["acme"], [multihash], [5], [salt]).items()
    assert one != other
    # the names of a shard are the same: look-ups search every shard by one prefix
    assert TenantIndex(KEY, origin="x").prefix("acme", multihash) == base.prefix("acme", multihash)


def test_a_value_moved_to_another_row_is_another_salt() -> None:
    index = TenantIndex(KEY, origin=ORIGIN)
    m = b"\x1e\x20" + os.urandom(32)
    salts = [os.urandom(16), os.urandom(16)]
    (k1, v1), (k2, v2) = index.rows(["acme", "acme"], [m, m], [3, 9], salts).items()
    assert index.decode(k1, v2)[1] not in salts and index.decode(k2, v1)[1] not in salts


def test_bad_input_is_refused() -> None:
    index = TenantIndex(KEY, origin=ORIGIN)
    m = b"\x1e\x20" + bytes(32)
    with pytest.raises(ValueError, match="tenant name"):
        index.rows(["../x"], [m], [0], [bytes(16)])
    with pytest.raises(ValueError, match="tenant name"):
        index.prefix("", m)
    with pytest.raises(ValueError, match="1 tenants, 2 multihashes"):
        index.rows(["acme"], [m, m], [0], [bytes(16)])
    with pytest.raises(ValueError, match="salts 16"):
        index.rows(["acme"], [m], [0], [bytes(15)])
    with pytest.raises(ValueError, match="not a tenant index row"):
        index.decode(b"t" + bytes(20), bytes(16))
    assert index.rows([], [], [], []) == {}
    assert repr(index) == "TenantIndex(…)"


def test_rows_use_the_names_they_are_given() -> None:
    """The sequencer computes a batch's names once (for the repeats cap) and hands them to `rows`."""
    index = TenantIndex(KEY, origin=ORIGIN)
    m = [b"\x1e\x20" + bytes([k]) * 32 for k in range(3)]
    tenants, places, salts = ["acme", "globex", "acme"], [5, 9, 2], [bytes([k]) * 16 for k in range(3)]
    names = index.names(tenants, m)
    assert index.rows(tenants, m, places, salts, names=names) == index.rows(tenants, m, places, salts)
    other = index.names(["initech"] * 3, m)
    given = index.rows(tenants, m, places, salts, names=other)
    assert sorted(key[1:17] for key in given) == sorted(other[k : k + 16] for k in range(0, 48, 16))
    with pytest.raises(ValueError, match="names of 16 bytes"):
        index.rows(tenants, m, places, salts, names=names[:-1])
