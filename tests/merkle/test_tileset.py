"""Proofs of a fresh batch come from the tiles it changed plus the previous right edge."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from merkle import TileBuilder, leaf_hash
from merkle.compact import batch_nodes
from merkle.proofs import inclusion_path
from merkle.tiles import TileLevels
from merkle.tileset import TileSet
from tests.merkle.reference import ref_path


def _leaves(first: int, n: int) -> list[bytes]:
    return [leaf_hash(i.to_bytes(4, "big")) for i in range(first, first + n)]


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 70_000), st.lists(st.integers(1, 1500), min_size=1, max_size=5))
def test_batch_proofs_from_changed_tiles_and_edge(start: int, batches: list[int]) -> None:
    builder = TileBuilder()
    all_leaves = _leaves(0, start)
    builder.append(all_leaves)
    # As after a restart: the resumed builder's edge is all the set holds.
    held = TileSet(builder.edge_tiles())
    for n in batches:
        first = builder.size
        new = _leaves(first, n)
        all_leaves += new
        held.add(builder.append(new))
        proofs = held.inclusion_proofs(first, n, builder.size)
        assert held.root(builder.size) == builder.root()  # the root a checkpoint signs
        for k in {0, n // 2, n - 1}:
            assert proofs[k] == ref_path(first + k, all_leaves)
        held.prune(builder.size)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 70_000), st.integers(1, 3000), st.data())
def test_compact_nodes_are_those_the_builder_picks_from_the_proofs(
    start: int, n: int, data: st.DataObject
) -> None:
    """`TileSet.nodes` of any subset of a fresh batch, in any order, held as the sequencer holds
    it (the batch's tiles and the edge before it), is `compact.batch_nodes` of their proofs."""
    builder = TileBuilder()
    builder.append(_leaves(0, start))
    held = TileSet(builder.edge_tiles())
    held.add(builder.append(_leaves(start, n)))
    size = builder.size
    positions = data.draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=min(n, 400), unique=True))
    indices = [start + k for k in positions]
    proofs = held.inclusion_proofs(start, n, size, order=positions)
    assert held.nodes(indices, size) == batch_nodes(indices, size, proofs)
    assert held.nodes([], size) == batch_nodes([], size, [])
    with pytest.raises(ValueError, match="outside the tree"):
        held.nodes([size], size)


def test_missing_tile_is_value_error() -> None:
    with pytest.raises(ValueError, match="tile 1/0"):
        TileSet().perfect(8, 0)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 70_000), st.data(), st.booleans())
def test_batch_proofs_equal_the_walk_of_each_entry(size: int, data: st.DataObject, levels: bool) -> None:
    """Every proof of any run of entries, whether the set hashed the tiles' inner levels itself
    or was given those the builder hashed."""
    first = data.draw(st.integers(0, size - 1))
    count = data.draw(st.integers(1, min(size - first, 3000)))
    builder = TileBuilder()
    known: TileLevels | None = {} if levels else None
    held = TileSet()
    held.add(builder.append(_leaves(0, size), levels=known), known)
    want = [inclusion_path(held, i, size) for i in range(first, first + count)]
    assert held.inclusion_proofs(first, count, size) == want
    assert held.inclusion_proofs(first, 0, size) == []
    # in any order asked for (the sequencer's callers' order), repeats included
    order = data.draw(st.permutations(range(count)))
    order += data.draw(st.lists(st.integers(0, count - 1), max_size=3))
    assert held.inclusion_proofs(first, count, size, order=order) == [want[k] for k in order]


def test_an_order_outside_the_run_is_a_value_error() -> None:
    held = TileSet()
    held.add(TileBuilder().append(_leaves(0, 10)))
    assert held.inclusion_proofs(2, 3, 10, order=[]) == []
    for order in ([0, 3], [-1, 0]):
        with pytest.raises(ValueError, match="outside range"):
            held.inclusion_proofs(2, 3, 10, order=order)


def test_proofs_outside_the_tree_are_value_errors() -> None:
    held = TileSet()
    held.add(TileBuilder().append(_leaves(0, 10)))
    with pytest.raises(ValueError, match="outside"):
        held.inclusion_proofs(5, 6, 10)


def test_the_root_of_every_small_tree_is_the_builders() -> None:
    """Sizes 1..600 one entry at a time (odd nodes carried up at every level, a tile's
    completion), each against TileBuilder.root; the empty tree has no tile to read."""
    builder = TileBuilder()
    held = TileSet()
    for i in range(600):
        held.add(builder.append(_leaves(i, 1)))
        assert held.root(builder.size) == builder.root()
        held.prune(builder.size)
    with pytest.raises(ValueError, match="size 0"):
        TileSet().root(0)
