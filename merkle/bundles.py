"""C2SP tlog-tiles entry bundles: entries each preceded by a big-endian uint16 length."""

from __future__ import annotations

from collections.abc import Iterable

from merkle.tiles import ENTRIES, TILE_HEIGHT, TILE_WIDTH, Tile, TileId

MAX_ENTRY = 0xFFFF


def encode_bundle(entries: Iterable[bytes]) -> bytes:
    parts: list[bytes] = []
    for i, e in enumerate(entries):
        if not isinstance(e, bytes):
            raise ValueError(f"entry {i} must be bytes")
        if len(e) > MAX_ENTRY:
            raise ValueError(f"entry {i} is {len(e)} bytes; a bundle entry holds at most {MAX_ENTRY}")
        parts.append(len(e).to_bytes(2, "big"))
        parts.append(e)
    return b"".join(parts)


def decode_bundle(data: bytes, *, count: int | None = None) -> list[bytes]:
    """Split a bundle into entries; ValueError on truncation or when `count` does not match."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise ValueError("an entry bundle must be bytes")
    view = memoryview(data)
    out: list[bytes] = []
    pos = 0
    while pos < len(view):
        if pos + 2 > len(view):
            raise ValueError(f"entry bundle truncated in the length of entry {len(out)}")
        n = int.from_bytes(view[pos : pos + 2], "big")
        pos += 2
        if pos + n > len(view):
            raise ValueError(f"entry bundle truncated inside entry {len(out)}")
        out.append(bytes(view[pos : pos + n]))
        pos += n
    if count is not None and len(out) != count:
        raise ValueError(f"entry bundle holds {len(out)} entries, expected {count}")
    return out


class BundleBuilder:
    """The partial entry bundle of a log; `append` returns the bundles that changed.

    Mirrors level 0 of `merkle.tiles.TileBuilder`: full bundles in order, then the new partial.
    """

    def __init__(self, size: int = 0, partial: Iterable[bytes] = ()) -> None:
        self._size = size
        self._partial = list(partial)
        if len(self._partial) != size % TILE_WIDTH:
            raise ValueError(f"partial bundle of {len(self._partial)} entries does not match size {size}")

    @property
    def size(self) -> int:
        return self._size

    def append(self, entries: Iterable[bytes]) -> list[Tile]:
        out: list[Tile] = []
        touched = False
        for e in entries:
            if not isinstance(e, bytes) or len(e) > MAX_ENTRY:
                raise ValueError(f"entry {self._size} must be bytes of at most {MAX_ENTRY}")
            self._partial.append(e)
            self._size += 1
            touched = True
            if len(self._partial) == TILE_WIDTH:
                index = (self._size >> TILE_HEIGHT) - 1
                out.append(Tile(TileId(ENTRIES, index), encode_bundle(self._partial)))
                self._partial = []
        if touched and self._partial:
            tid = TileId(ENTRIES, self._size >> TILE_HEIGHT, len(self._partial))
            out.append(Tile(tid, encode_bundle(self._partial)))
        return out
