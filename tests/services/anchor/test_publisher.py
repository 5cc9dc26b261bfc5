"""Publication of a round of tiles (`Publisher.put_tiles`): one call of the store for all of
them, immutable and cacheable as such, retried whole while the store fails, never over bytes
that differ."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from merkle.tiles import Tile, TileId
from services.anchor.publisher import Publisher
from services.published import layout
from storage.errors import ConflictError
from storage.memory import MemoryStore


class CountingStore(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.calls: list[int] = []

    async def put_all_if_absent(
        self, items: Sequence[tuple[str, bytes]], *, cache_control: str | None = None
    ) -> None:
        self.calls.append(len(items))
        await super().put_all_if_absent(items, cache_control=cache_control)


def tiles(n: int) -> list[Tile]:
    made = [Tile(TileId(0, i), bytes([i]) * 32 * 256) for i in range(n)]
    return made + [Tile(TileId("entries", i, 7), bytes([i]) * 70) for i in range(n)]


async def test_a_round_is_one_call_of_the_store_with_every_tile_immutable() -> None:
    store = CountingStore()
    round_ = tiles(40)
    await Publisher(store, prefix="").put_tiles(round_)
    assert store.calls == [80]
    for t in round_:
        key = layout.tile_key(t.id, "")
        assert store.objects[key] == t.data
        assert store.cache_control[key] == layout.IMMUTABLE
    await Publisher(store, prefix="").put_tiles([])
    assert store.calls == [80]  # nothing to publish: no call


async def test_a_failing_store_is_retried_until_the_whole_round_is_stored() -> None:
    store = CountingStore()
    round_ = tiles(5)
    store.faults.inject("put_if_absent", layout.tile_key(round_[3].id, ""), times=2)
    store.faults.inject("put_if_absent", layout.tile_key(round_[7].id, ""), stored=True)  # failed but stored
    publisher = Publisher(store, prefix="")
    await publisher.put_tiles(round_)
    assert publisher.errors == 2 and store.calls == [10, 10, 10]
    assert all(store.objects[layout.tile_key(t.id, "")] == t.data for t in round_)


async def test_different_bytes_under_a_tile_stop_publication_at_once() -> None:
    store = CountingStore()
    round_ = tiles(3)
    await store.put_if_absent(layout.tile_key(round_[1].id, ""), b"another log's tile")
    with pytest.raises(ConflictError, match=round_[1].id.path):
        await Publisher(store, prefix="").put_tiles(round_)
    assert store.calls == [6]  # not retried: it will not go away
