"""C2SP tlog-tiles entry bundles: entries each preceded by a big-endian uint16 length."""

from __future__ import annotations

from collections.abc import Iterable

from merkle.tiles import ENTRIES, TILE_HEIGHT, TILE_WIDTH, Tile, TileId

MAX_ENTRY = 0xFFFF


def _check_entries(entries: list[bytes], first: int = 0) -> None:
    """ValueError naming the first entry that is not bytes of at most MAX_ENTRY."""
    # whole-list passes in C first (a sequencer appends up to 20,000 entries a batch)
    if set(map(type, entries)) <= {bytes} and max(map(len, entries), default=0) <= MAX_ENTRY:
        return
    for i, e in enumerate(entries, first):
        if not isinstance(e, bytes):
            raise ValueError(f"entry {i} must be bytes")
        if len(e) > MAX_ENTRY:
            raise ValueError(f"entry {i} is {len(e)} bytes; a bundle entry holds at most {MAX_ENTRY}")


def _encode(entries: list[bytes]) -> bytes:
    sizes = set(map(len, entries))
    if len(sizes) == 1:  # entries of one size (every v2 entry is 33 bytes): one join, no copy each
        frame = sizes.pop().to_bytes(2, "big")
        return frame + frame.join(entries)
    return b"".join([len(e).to_bytes(2, "big") + e for e in entries])


def encode_bundle(entries: Iterable[bytes]) -> bytes:
    entries = list(entries)
    _check_entries(entries)
    return _encode(entries)


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
        """Add entries; ValueError (and nothing added) if one is not bytes of at most MAX_ENTRY."""
        new = list(entries)
        _check_entries(new, self._size)
        out: list[Tile] = []
        pos = 0
        while pos < len(new):
            take = min(TILE_WIDTH - len(self._partial), len(new) - pos)
            self._partial += new[pos : pos + take]
            self._size += take
            pos += take
            if len(self._partial) == TILE_WIDTH:
                index = (self._size >> TILE_HEIGHT) - 1
                out.append(Tile(TileId(ENTRIES, index), _encode(self._partial)))
                self._partial = []
        if new and self._partial:
            tid = TileId(ENTRIES, self._size >> TILE_HEIGHT, len(self._partial))
            out.append(Tile(tid, _encode(self._partial)))
        return out
