"""CBOR for COSE: a deterministic encoder (RFC 8949 §4.2.1) and a strict decoder of untrusted input.

``encode`` writes integers, byte and text strings, arrays, maps, tags, null and booleans in RFC 8949's
core deterministic encoding: the shortest head for every length and integer, definite lengths only,
and map keys sorted by the bytewise lexicographic order of their encodings. (cbor2's
``canonical=True`` is RFC 7049's order — shorter keys first — which puts key 395 after key -1: not
what RFC 9679 thumbprints and notar's entries are defined over.) Floats are never written.

``decode`` reads exactly one data item that fills ``data``. It is the parser of signed statements
that anyone can send, so it refuses what makes one message mean two things or costs without
bound: trailing bytes, indefinite lengths, reserved head values, a map key given twice, map keys
other than integers, text or byte strings, nesting deeper than ``MAX_DEPTH``, a length longer than
the bytes left, and text that is not UTF-8. It accepts heads that are longer than needed (other
encoders' output is read, never re-signed: notar re-encodes what it hashes). Every refusal is a
``ValueError`` saying what is wrong and where.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass

MAX_DEPTH = 16
_UTF8_ERRORS = "strict"


@dataclass(frozen=True)
class Tag:
    """A tagged data item: tag ``number`` over ``value``."""

    number: int
    value: object


@dataclass(frozen=True)
class Simple:
    """A simple value other than false, true and null (undefined is ``Simple(23)``)."""

    value: int


def _head(major: int, n: int) -> bytes:
    if n < 24:
        return bytes((major << 5 | n,))
    if n < 0x100:
        return bytes((major << 5 | 24, n))
    if n < 0x10000:
        return bytes((major << 5 | 25,)) + n.to_bytes(2, "big")
    if n < 0x100000000:
        return bytes((major << 5 | 26,)) + n.to_bytes(4, "big")
    if n < 0x10000000000000000:
        return bytes((major << 5 | 27,)) + n.to_bytes(8, "big")
    raise ValueError(f"integer {n} does not fit CBOR's 64-bit head")


def encode(value: object) -> bytes:
    """``value`` in deterministic CBOR (module doc); ``ValueError`` for a type it does not write."""
    out = bytearray()
    _encode(value, out)
    return bytes(out)


def _encode(value: object, out: bytearray) -> None:
    if value is None:
        out.append(0xF6)
    elif value is True:
        out.append(0xF5)
    elif value is False:
        out.append(0xF4)
    elif isinstance(value, int):
        out += _head(0, value) if value >= 0 else _head(1, -1 - value)
    elif isinstance(value, bytes | bytearray | memoryview):
        data = bytes(value)
        out += _head(2, len(data)) + data
    elif isinstance(value, str):
        text = value.encode("utf-8")
        out += _head(3, len(text)) + text
    elif isinstance(value, list | tuple):
        out += _head(4, len(value))
        for item in value:
            _encode(item, out)
    elif isinstance(value, Mapping):
        pairs = sorted((encode(k), encode(v)) for k, v in value.items())
        if len({k for k, _ in pairs}) != len(pairs):
            raise ValueError("a map with two keys of the same encoding")
        out += _head(5, len(pairs))
        for k, v in pairs:
            out += k + v
    elif isinstance(value, Tag):
        out += _head(6, value.number)
        _encode(value.value, out)
    elif isinstance(value, Simple):
        out += _head(7, value.value)
    else:
        raise ValueError(f"cannot encode a {type(value).__name__} in CBOR")


def decode(data: bytes) -> object:
    """The one data item that is all of ``data``: ints, bytes, str, list, dict, Tag, None, bools,
    floats and Simple. ``ValueError`` naming the offset of what is refused (module doc)."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise ValueError("CBOR input must be bytes")
    reader = _Reader(bytes(data))
    value = reader.item(0)
    if reader.at != len(reader.data):
        raise ValueError(f"{len(reader.data) - reader.at} bytes after the CBOR data item")
    return value


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.at = 0

    def take(self, n: int) -> bytes:
        if n > len(self.data) - self.at:
            raise ValueError(
                f"CBOR truncated at byte {self.at}: {n} bytes wanted, {len(self.data) - self.at} left"
            )
        chunk = self.data[self.at : self.at + n]
        self.at += n
        return chunk

    def head(self) -> tuple[int, int, int]:
        """(major type, additional info, argument) of the next item."""
        start = self.at
        (first,) = self.take(1)
        major, info = first >> 5, first & 0x1F
        if info < 24:
            return major, info, info
        if info in (24, 25, 26, 27):
            return major, info, int.from_bytes(self.take(1 << (info - 24)), "big")
        if info == 31:
            raise ValueError(f"indefinite-length CBOR item at byte {start}")
        raise ValueError(f"reserved CBOR additional information {info} at byte {start}")

    def length(self, n: int, unit: int, start: int) -> int:
        if n * unit > len(self.data) - self.at:
            raise ValueError(f"CBOR item at byte {start} claims {n} elements, more than the bytes left")
        return n

    def item(self, depth: int) -> object:
        if depth > MAX_DEPTH:
            raise ValueError(f"CBOR nested deeper than {MAX_DEPTH} at byte {self.at}")
        start = self.at
        major, info, arg = self.head()
        if major == 0:
            return arg
        if major == 1:
            return -1 - arg
        if major == 2:
            return self.take(self.length(arg, 1, start))
        if major == 3:
            raw = self.take(self.length(arg, 1, start))
            try:
                return raw.decode("utf-8", _UTF8_ERRORS)
            except UnicodeDecodeError:
                raise ValueError(f"CBOR text at byte {start} is not UTF-8") from None
        if major == 4:
            return [self.item(depth + 1) for _ in range(self.length(arg, 1, start))]
        if major == 5:
            result: dict[object, object] = {}
            for _ in range(self.length(arg, 2, start)):
                key_at = self.at
                key = self.item(depth + 1)
                if isinstance(key, bool) or not isinstance(key, int | str | bytes):
                    raise ValueError(f"CBOR map key at byte {key_at} is not an integer, text or bytes")
                if key in result:
                    raise ValueError(f"CBOR map key {key!r:.60} given twice (byte {key_at})")
                result[key] = self.item(depth + 1)
            return result
        if major == 6:
            return Tag(arg, self.item(depth + 1))
        return self.simple(info, arg, start)

    def simple(self, info: int, arg: int, start: int) -> object:
        if info == 25:
            return struct.unpack(">e", arg.to_bytes(2, "big"))[0]
        if info == 26:
            return struct.unpack(">f", arg.to_bytes(4, "big"))[0]
        if info == 27:
            return struct.unpack(">d", arg.to_bytes(8, "big"))[0]
        if info == 24 and arg < 32:
            raise ValueError(f"CBOR simple value {arg} in two bytes at byte {start}")
        return {20: False, 21: True, 22: None}.get(arg, Simple(arg))
