"""merkle.cbor: RFC 8949 §4.2.1 deterministic encoding (checked against cbor2 and RFC 8949's own
examples) and the strict decoder of untrusted statements."""

from __future__ import annotations

import contextlib

import cbor2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from merkle.cbor import Simple, Tag, decode, encode

# RFC 8949 Appendix A: (diagnostic value, encoding)
VECTORS = [
    (0, "00"),
    (23, "17"),
    (24, "1818"),
    (1000, "1903e8"),
    (1000000, "1a000f4240"),
    (18446744073709551615, "1bffffffffffffffff"),
    (-1, "20"),
    (-1000, "3903e7"),
    (b"", "40"),
    (b"\x01\x02\x03\x04", "4401020304"),
    ("IETF", "6449455446"),
    ("\u00fc", "62c3bc"),
    ([1, [2, 3], [4, 5]], "8301820203820405"),
    ({1: 2, 3: 4}, "a201020304"),
    ({"a": 1, "b": [2, 3]}, "a26161016162820203"),
    (Tag(1, 1363896240), "c11a514b67b0"),
    (None, "f6"),
    (True, "f5"),
]


@pytest.mark.parametrize(("value", "hex_"), VECTORS)
def test_rfc8949_examples(value: object, hex_: str) -> None:
    assert encode(value).hex() == hex_
    assert decode(bytes.fromhex(hex_)) == value


def test_map_keys_sort_bytewise_not_shortest_first() -> None:
    # RFC 8949 §4.2.1: 395 (0x19018b) sorts before -1 (0x20); RFC 7049's canonical order (cbor2's)
    # puts the one-byte key first. RFC 9679 thumbprints and notar's receipts use §4.2.1.
    assert encode({-1: 0, 395: 0, "a": 0, 1: 0}).hex() == "a4" + "0100" + "19018b00" + "2000" + "616100"
    assert cbor2.dumps({-1: 0, 395: 0}, canonical=True).hex() == "a2" + "2000" + "19018b00"


@given(
    st.recursive(
        st.none()
        | st.booleans()
        | st.integers(-(2**64), 2**64 - 1)
        | st.binary(max_size=40)
        | st.text(max_size=20),
        lambda inner: (
            st.lists(inner, max_size=5)
            | st.dictionaries(st.integers(-(2**20), 2**20) | st.text(max_size=8), inner, max_size=5)
        ),
        max_leaves=20,
    )
)
def test_what_it_writes_it_reads_back_and_cbor2_reads_alike(value: object) -> None:
    data = encode(value)
    assert decode(data) == value
    assert cbor2.loads(data) == value


@pytest.mark.parametrize(
    ("hex_", "why"),
    [
        ("", "truncated"),
        ("0000", "after the CBOR data item"),
        ("1a00", "truncated"),
        ("5f4101ff", "indefinite"),
        ("1c", "reserved"),
        ("a201020103", "given twice"),
        ("a1f401", "not an integer, text or bytes"),
        ("a18001", "not an integer, text or bytes"),
        ("62c3", "more than the bytes left"),
        ("62ff00", "not UTF-8"),
        ("9b00000000ffffffff", "more than the bytes left"),
        ("81" * 40 + "00", "deeper"),
        ("f818", "simple value"),
    ],
)
def test_the_decoder_refuses_what_is_ambiguous_or_unbounded(hex_: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        decode(bytes.fromhex(hex_))


def test_floats_and_simple_values_are_read() -> None:
    assert decode(bytes.fromhex("f93c00")) == 1.0
    assert decode(bytes.fromhex("fa47c35000")) == 100000.0
    assert decode(bytes.fromhex("f7")) == Simple(23)


@given(st.binary(max_size=200))
def test_the_decoder_only_raises_value_error(data: bytes) -> None:
    with contextlib.suppress(ValueError):
        decode(data)
