"""Proofs of a fresh batch come from the tiles it changed plus the previous right edge."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from merkle import TileBuilder, leaf_hash
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
        for k in {0, n // 2, n - 1}:
            assert proofs[k] == ref_path(first + k, all_leaves)
        held.prune(builder.size)


def test_missing_tile_is_value_error() -> None:
    with pytest.raises(ValueError, match="tile 1/0"):
        TileSet().perfect(8, 0)
