"""C2SP tlog-tiles: paths, tile sets, the incremental builder and proofs from tiles."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from merkle import (
    ENTRIES,
    TileBuilder,
    TileId,
    consistency_proof_from_tiles,
    inclusion_proof_from_tiles,
    leaf_hash,
    parse_tile_path,
    root_from_tiles,
    tile_path,
    tiles_for_size,
    tiles_needed,
)
from merkle.tiles import perfect_root, split_hashes
from tests.merkle.reference import ref_path, ref_root, ref_subproof


def leaves(start: int, n: int) -> list[bytes]:
    return [leaf_hash(i.to_bytes(4, "big")) for i in range(start, start + n)]


@pytest.mark.parametrize(
    ("level", "index", "width", "path"),
    [
        (0, 0, 256, "tile/0/000"),
        (0, 1234067, 256, "tile/0/x001/x234/067"),
        (1, 1000, 256, "tile/1/x001/000"),
        (3, 999, 17, "tile/3/999.p/17"),
        ("entries", 5, 1, "tile/entries/005.p/1"),
        ("entries", 1_000_000, 256, "tile/entries/x001/x000/000"),
        (63, 0, 255, "tile/63/000.p/255"),
    ],
)
def test_tile_paths_round_trip(level: int | str, index: int, width: int, path: str) -> None:
    assert tile_path(level, index, width) == path
    tid = parse_tile_path(path)
    assert (tid.level, tid.index, tid.width) == (level, index, width)
    assert tid.path == path


@pytest.mark.parametrize(
    "bad",
    [
        "tile/00/000",
        "tile/64/000",
        "tile/0/0",
        "tile/0/x000/001",
        "tile/0/001.p/0",
        "tile/0/001.p/256",
        "tile/0/001.p/07",
        "tile/0/../000",
        "tile/entries/001/x002",
        "tile/0/000/",
        "/tile/0/000",
        "tile/-1/000",
        "tile/0/1234",
        "tile/0/x1234/000",
        "",
    ],
)
def test_bad_tile_paths(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_tile_path(bad)


@pytest.mark.parametrize(
    ("level", "index", "width"), [(64, 0, 1), (0, -1, 1), (0, 0, 0), (0, 0, 257), ("x", 0, 1)]
)
def test_bad_tile_path_arguments(level: object, index: int, width: int) -> None:
    with pytest.raises(ValueError):
        tile_path(level, index, width)  # type: ignore[arg-type]


def test_tiles_for_size_matches_spec_example() -> None:
    # "a tree of size 70,000 will be represented by 273 full level 0 tiles, one partial level 0
    # tile of width 112, one full level 1 tile, one partial level 1 tile of width 17, and one
    # partial level 2 tile of width 1."
    tiles = list(tiles_for_size(70_000))
    count = Counter((t.level, t.width) for t in tiles)
    assert count == {(0, 256): 273, (0, 112): 1, (1, 256): 1, (1, 17): 1, (2, 1): 1}
    assert [t for t in tiles_for_size(256)] == [TileId(0, 0), TileId(1, 0, 1)]
    assert list(tiles_for_size(0)) == []
    with_entries = list(tiles_for_size(300, entries=True))
    assert TileId(ENTRIES, 0) in with_entries and TileId(ENTRIES, 1, 44) in with_entries


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 700), min_size=1, max_size=8))
def test_builder_emits_exactly_the_changed_tiles(batches: list[int]) -> None:
    b = TileBuilder()
    store: dict[TileId, bytes] = {}
    size = 0
    for n in batches:
        before = set(tiles_for_size(size))
        out = b.append(leaves(size, n))
        size += n
        ids = [t.id for t in out]
        assert len(ids) == len(set(ids))
        assert set(ids) == set(tiles_for_size(size)) - before
        for t in out:
            assert len(t.data) == 32 * t.id.width
            if not t.id.partial:
                assert t.id not in store  # a full tile is written once and never changes
            store[t.id] = t.data
        assert b.size == size
        assert b.root() == ref_root(leaves(0, size))
    # level-0 tiles hold the leaf hashes; level-1 hashes are roots of full level-0 tiles
    all_leaves = leaves(0, size)
    for tid, data in store.items():
        if tid.level == 0 and tid in set(tiles_for_size(size)):
            assert split_hashes(data, tid.width) == all_leaves[tid.index * 256 : tid.index * 256 + tid.width]
        if tid.level == 1 and tid in set(tiles_for_size(size)):
            for j, hsh in enumerate(split_hashes(data, tid.width)):
                k = tid.index * 256 + j
                assert hsh == perfect_root(all_leaves[k * 256 : (k + 1) * 256])


def _published(size: int) -> dict[TileId, bytes]:
    b = TileBuilder()
    store: dict[TileId, bytes] = {}
    for t in b.append(leaves(0, size)):
        store[t.id] = t.data
    return store


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 70_000), st.integers(0, 600))
def test_builder_resumes_from_published_partial_tiles(size: int, more: int) -> None:
    store = _published(size)
    resumed = TileBuilder.from_tiles(size, lambda tid: store[tid])
    assert resumed.root() == ref_root(leaves(0, size))
    fresh = TileBuilder(size=0)
    fresh.append(leaves(0, size))
    assert [(t.id, t.data) for t in resumed.append(leaves(size, more))] == [
        (t.id, t.data) for t in fresh.append(leaves(size, more))
    ]


def test_builder_rejects_inconsistent_state() -> None:
    with pytest.raises(ValueError):
        TileBuilder(size=3, edges=[leaves(0, 2)])


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 1500), st.data())
def test_proofs_from_tiles_match_reference(size: int, data: st.DataObject) -> None:
    store = _published(size)
    hs = leaves(0, size)

    def fetch(tid: TileId) -> bytes:
        return store[tid]

    i = data.draw(st.integers(0, size - 1))
    assert inclusion_proof_from_tiles(i, size, fetch) == ref_path(i, hs)
    m = data.draw(st.integers(1, size))
    want = [] if m == size else ref_subproof(m, hs, True)
    assert consistency_proof_from_tiles(m, size, fetch) == want
    assert root_from_tiles(size, fetch) == ref_root(hs)
    # Only the tiles that the computation needs, all of which exist in a tree of that size.
    needed = tiles_needed(lambda f: inclusion_proof_from_tiles(i, size, f))
    assert needed <= set(tiles_for_size(size))
    assert inclusion_proof_from_tiles(i, size, {t: store[t] for t in needed}.__getitem__) == ref_path(i, hs)


def test_proofs_from_older_tree_use_that_trees_partial_tiles() -> None:
    # Proving against size 300 after the log has grown to 600: the 300 tree's partial tiles.
    store = _published(300)
    store.update(
        {t.id: t.data for t in TileBuilder.from_tiles(300, store.__getitem__).append(leaves(300, 300))}
    )
    hs = leaves(0, 600)
    assert inclusion_proof_from_tiles(5, 300, store.__getitem__) == ref_path(5, hs[:300])
    assert consistency_proof_from_tiles(300, 600, store.__getitem__) == ref_subproof(300, hs, True)


def test_wrong_tile_length_is_value_error() -> None:
    with pytest.raises(ValueError):
        inclusion_proof_from_tiles(0, 10, lambda tid: b"\x00" * 31)
