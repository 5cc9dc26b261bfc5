"""Digests (SPEC §1), v2 log entries, and entry bundles."""

from __future__ import annotations

import contextlib
import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from merkle import (
    ENTRY_NOTAR,
    ENTRY_SCITT,
    BundleBuilder,
    Digest,
    TileId,
    decode_bundle,
    encode_bundle,
    hash_document,
    make_entries,
    make_entry,
    parse_digest,
    parse_entry,
    tiles_for_size,
)
from merkle.digests import entries_of, multihashes

B3 = "blake3:" + "ab" * 32
S256 = "sha256:" + "0f" * 32
SALT = bytes(range(16))


def test_digest_round_trip_and_multihash() -> None:
    d = parse_digest(B3)
    assert str(d) == B3 and d.algorithm == "blake3" and d.value == b"\xab" * 32
    assert d.multihash == b"\x1e\x20" + b"\xab" * 32
    s = parse_digest(S256)
    assert s.multihash == b"\x12\x20" + b"\x0f" * 32


def test_entry_is_a_typed_hiding_commitment() -> None:
    d = parse_digest(B3)
    entry = make_entry(d, SALT, "acme")
    assert len(entry) == 33 and entry[0] == ENTRY_NOTAR == 0x02
    assert d.value not in entry and b"acme" not in entry  # the digest and the tenant are hidden
    assert parse_entry(entry) == ENTRY_NOTAR
    # each input changes the commitment
    others = {
        make_entry(parse_digest(S256), SALT, "acme"),
        make_entry(d, bytes(16), "acme"),
        make_entry(d, SALT, "acmf"),
        make_entry(Digest("sha256", d.value), SALT, "acme"),
    }
    assert entry not in others and len(others) == 4


@pytest.mark.parametrize(
    ("salt", "subject", "message"),
    [
        (b"", "acme", "exactly 16 bytes, not 0"),
        (b"x" * 15, "acme", "not 15 bytes"),
        (b"x" * 17, "acme", "not 17 bytes"),
        ("0" * 16, "acme", "not str"),
        (SALT, "", "1 to 64 bytes of UTF-8, not 0"),
        (SALT, "é" * 33, "not 66"),
        (SALT, "\ud800", "not valid UTF-8"),
        (SALT, b"acme", "must be a string"),
    ],
)
def test_bad_salt_or_subject_is_refused_naming_it(salt: object, subject: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_entry(parse_digest(B3), salt, subject)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=message):
        make_entries([parse_digest(B3)], [salt], subject)  # type: ignore[list-item, arg-type]


def test_subject_limits_are_bytes_not_characters() -> None:
    make_entry(parse_digest(B3), SALT, "é" * 32)  # 64 bytes
    make_entry(parse_digest(B3), SALT, "x" * 64)
    with pytest.raises(ValueError):
        make_entry(parse_digest(B3), SALT, "x" * 65)


@given(
    st.lists(st.tuples(st.binary(min_size=32, max_size=32), st.binary(min_size=16, max_size=16)), max_size=9),
    st.text(min_size=1, max_size=16),
)
def test_batch_helper_equals_one_by_one(pairs: list[tuple[bytes, bytes]], subject: str) -> None:
    digests = [Digest("blake3", v) for v, _ in pairs]
    salts = [s for _, s in pairs]
    try:
        want = [make_entry(d, s, subject) for d, s in zip(digests, salts, strict=True)]
    except ValueError:  # a subject of more than 64 bytes or with a lone surrogate
        with pytest.raises(ValueError):
            make_entries(digests, salts, subject)
        return
    assert make_entries(digests, salts, subject) == want
    with pytest.raises(ValueError, match="digests but"):
        make_entries(digests, [*salts, SALT], subject)


def test_entries_from_multihashes_equal_make_entries_and_check_their_input() -> None:
    digests = [parse_digest(B3), parse_digest(S256), Digest("blake3", bytes(32))]
    salts = [SALT, bytes(16), b"\xff" * 16]
    assert multihashes(digests) == [d.multihash for d in digests]
    assert entries_of(multihashes(digests), salts, "acme") == [
        make_entry(d, s, "acme") for d, s in zip(digests, salts, strict=True)
    ]
    good = parse_digest(B3).multihash
    wrong_code, wrong_length = b"\x13" + good[1:], good[:1] + b"\x21" + good[2:]
    for bad in (good[:-1], good + b"\x00", wrong_code, wrong_length, bytearray(good)):
        with pytest.raises(ValueError, match="a multihash is 34 bytes"):
            entries_of([good, bad], [SALT, SALT], "acme")  # type: ignore[list-item]
    with pytest.raises(ValueError, match="not 15 bytes"):
        entries_of([good, good], [SALT, SALT[:15]], "acme")
    with pytest.raises(ValueError, match="2 multihashes but 1 salts"):
        entries_of([good, good], [SALT], "acme")
    with pytest.raises(ValueError, match="needs Digests"):
        make_entries([parse_digest(B3), good], [SALT, SALT], "acme")  # type: ignore[list-item]


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
    ("bad", "message"),
    [
        (b"", "never empty"),
        (b"\x02" + b"\x00" * 31, "33 bytes, not 32"),
        (b"\x02" + b"\x00" * 33, "33 bytes, not 34"),
        (b"\x03", "carries a statement"),
        (b"\x1e\x20" + b"\x00" * 32, "v1 entry"),
        (b"\x12\x20" + b"\x00" * 32 + SALT, "v1 entry"),
        (b"\x01" + b"\x00" * 32, "unknown log entry type 0x01"),
        ("02" * 33, "must be bytes"),
    ],
)
def test_bad_entries_are_refused(bad: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_entry(bad)


def test_scitt_entries_are_recognised_not_read() -> None:
    assert parse_entry(b"\x03" + b"a COSE_Sign1 statement") == ENTRY_SCITT


def test_bad_digest_values() -> None:
    with pytest.raises(ValueError):
        Digest("blake3", b"\x00" * 31)
    with pytest.raises(ValueError):
        Digest("md5", b"\x00" * 32)
    with pytest.raises(ValueError):
        make_entry("blake3:" + "00" * 32, SALT, "acme")  # type: ignore[arg-type]


def test_hash_document_whole_or_in_chunks() -> None:
    d = hash_document(b"abc", "sha256")
    assert str(d) == "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert hash_document(iter([b"a", b"bc"]), "sha256") == d
    assert hash_document(b"abc", "blake3") == hash_document([b"ab", b"c"], "blake3") != d
    assert hash_document(b"", "sha256").value == hashlib.sha256(b"").digest()
    with pytest.raises(ValueError):
        hash_document(b"abc", "md5")


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


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 40), st.lists(st.binary(max_size=40), max_size=30), st.booleans())
def test_bundles_frame_each_entry_with_its_length(size: int, mixed: list[bytes], same: bool) -> None:
    """Entries of one size (one join) and of many sizes are framed alike: length, then bytes."""
    entries = [bytes([i % 256]) * size for i in range(len(mixed))] if same else mixed
    framed = b"".join(len(e).to_bytes(2, "big") + e for e in entries)
    assert encode_bundle(entries) == framed
    assert decode_bundle(framed) == entries
