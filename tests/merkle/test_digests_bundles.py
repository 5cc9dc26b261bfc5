"""Digests (SPEC §1), multihash entries, and entry bundles."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from merkle import (
    BundleBuilder,
    Digest,
    TileId,
    decode_bundle,
    encode_bundle,
    make_entry,
    parse_digest,
    parse_entry,
    tiles_for_size,
)

B3 = "blake3:" + "ab" * 32
S256 = "sha256:" + "0f" * 32


def test_digest_round_trip_and_multihash() -> None:
    d = parse_digest(B3)
    assert str(d) == B3 and d.algorithm == "blake3" and d.value == b"\xab" * 32
    assert d.multihash == b"\x1e\x20" + b"\xab" * 32
    s = parse_digest(S256)
    assert s.multihash == b"\x12\x20" + b"\x0f" * 32
    salt = bytes(range(16))
    assert parse_entry(make_entry(d, salt)) == (d, salt)
    assert parse_entry(make_entry(s)) == (s, b"")


@pytest.mark.parametrize(
    "bad",
    [
        "blake3:" + "AB" * 32, "blake3:" + "ab" * 31, "blake3:" + "ab" * 33, "md5:" + "ab" * 32,
        "sha512:" + "ab" * 32, "BLAKE3:" + "ab" * 32, "blake3:" + "zz" * 32, " blake3:" + "ab" * 32,
        B3 + "\n", "blake3" + "ab" * 32, "", 42, None, b"blake3:" + b"ab" * 32,
    ],
)
def test_bad_digests_are_refused(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_digest(bad)


@pytest.mark.parametrize(
    "bad",
    [b"", b"\x1e\x20" + b"\x00" * 31, b"\x13\x20" + b"\x00" * 32, b"\x1e\x40" + b"\x00" * 32,
     b"\x1e\x20" + b"\x00" * 32 + b"\x01" * 15, b"\x1e\x20" + b"\x00" * 32 + b"\x01" * 17],
)
def test_bad_entries_are_refused(bad: bytes) -> None:
    with pytest.raises(ValueError):
        parse_entry(bad)


def test_bad_salt_and_digest_values() -> None:
    with pytest.raises(ValueError):
        make_entry(parse_digest(B3), b"short")
    with pytest.raises(ValueError):
        Digest("blake3", b"\x00" * 31)
    with pytest.raises(ValueError):
        Digest("md5", b"\x00" * 32)


@given(st.lists(st.binary(max_size=300), max_size=50))
def test_bundle_round_trip(entries: list[bytes]) -> None:
    data = encode_bundle(entries)
    assert decode_bundle(data) == entries
    assert decode_bundle(data, count=len(entries)) == entries


def test_bundle_layout_and_errors() -> None:
    assert encode_bundle([b"ab", b""]) == b"\x00\x02ab\x00\x00"
    for bad in (b"\x00", b"\x00\x05ab", b"\x00\x02ab\x00"):
        with pytest.raises(ValueError):
            decode_bundle(bad)
    with pytest.raises(ValueError):
        decode_bundle(b"\x00\x00", count=2)
    with pytest.raises(ValueError):
        encode_bundle([b"x" * 65536])


@given(st.binary())
def test_decode_bundle_only_raises_value_error(data: bytes) -> None:
    with contextlib.suppress(ValueError):
        decode_bundle(data)


@given(st.lists(st.integers(0, 600), min_size=1, max_size=6))
def test_bundle_builder_emits_changed_bundles(batches: list[int]) -> None:
    b = BundleBuilder()
    size = 0
    published: dict[TileId, bytes] = {}
    for n in batches:
        entries = [i.to_bytes(3, "big") for i in range(size, size + n)]
        before = {t for t in tiles_for_size(size, entries=True) if t.level == "entries"}
        out = b.append(entries)
        size += n
        after = {t for t in tiles_for_size(size, entries=True) if t.level == "entries"}
        assert {t.id for t in out} == after - before
        published.update({t.id: t.data for t in out})
    for tid in {t for t in tiles_for_size(size, entries=True) if t.level == "entries"}:
        got = decode_bundle(published[tid], count=tid.width)
        assert got == [i.to_bytes(3, "big") for i in range(tid.index * 256, tid.index * 256 + tid.width)]


def test_bundle_builder_refuses_a_bad_entry_and_adds_nothing() -> None:
    b = BundleBuilder(3, [b"a", b"b", b"c"])
    for bad, message in (("text", "entry 4 must be bytes"), (b"x" * 65536, "entry 4 is 65536 bytes")):
        with pytest.raises(ValueError, match=message):
            b.append([b"d", bad])  # type: ignore[list-item]
        assert b.size == 3
    assert [t.id.width for t in b.append([b"d"])] == [4]
