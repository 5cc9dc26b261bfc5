"""LogReader proofs asked many at once while the log grows. Found by the anvil-outage chaos
scenario: GET /v1/receipts answered 500 ("tiles just loaded are held") when tiles a proof had found
in the cache were evicted by concurrent loads before the proof ran again over the tiles it had
fetched. Each proof must succeed and equal the one computed from the leaves, whatever the caches
hold: they are made small here, so that concurrent loads evict often."""

from __future__ import annotations

import asyncio
import hashlib
import random

import pytest

from merkle.checkpoint import Checkpoint, sign_checkpoint
from merkle.cosignature import CosignatureSigner
from merkle.note import Signer
from merkle.proofs import Tree
from merkle.tiles import TileBuilder
from services.published.reader import LogReader
from storage.memory import MemoryStore

ORIGIN = "reader.notar.test/log"
LOG = Signer.generate(ORIGIN)
CLOCK = CosignatureSigner.generate(ORIGIN + "/clock")
SIZE = 256 * 12  # two levels of tiles, both with a right edge that changes with every size
CONCURRENT = 40


class SlowStore(MemoryStore):
    """Reads take a little while, as over a network: loads of concurrent proofs interleave."""

    async def get(self, key: str) -> bytes:
        await asyncio.sleep(random.random() * 0.003)
        return await super().get(key)


async def test_concurrent_proofs_while_the_log_grows(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("services.published.reader._CACHE_PARTIAL", 4)
    monkeypatch.setattr("services.published.reader._CACHE_TILES", 8)
    leaves = [hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(SIZE)]
    tree = Tree(leaves)
    store = SlowStore()
    builder = TileBuilder()
    for leaf in leaves:  # the tiles of every size, as publication leaves them
        for tile in builder.append([leaf]):
            await store.put("log/" + tile.id.path, tile.data)
    reader = LogReader(store, origin=ORIGIN, checkpoint_ttl=0)
    published = [256]

    async def prove(rng: random.Random) -> None:
        # each proof sees the log one entry larger: a right-edge tile width of its own
        published[0] += 1
        size = published[0]
        cp = Checkpoint(ORIGIN, size, tree.root(size))
        await store.put("log/checkpoint", sign_checkpoint(cp, LOG, CLOCK, 1_700_000_000 + size).encode())
        asked = rng.randint(max(1, size - 300), size)
        index = rng.randrange(asked)
        assert await reader.inclusion_proof(index, asked) == tree.inclusion_proof(index, asked)

    rng = random.Random(7)
    while published[0] + CONCURRENT <= SIZE:
        await asyncio.gather(*(prove(rng) for _ in range(CONCURRENT)))
