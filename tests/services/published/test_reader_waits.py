"""A question about a tree the published checkpoint does not cover yet waits for it, at most
`WAIT_S` (SPEC §2: receipts arrive before their checkpoint is published), and the waiters share
their reads of the checkpoint; a tile that can never come, or that a published tree lacks, is
404 at once or after the wait."""

from __future__ import annotations

import asyncio
import os

import pytest

from merkle import BundleBuilder, Checkpoint, TileBuilder, sign_checkpoint
from merkle.cosignature import CosignatureSigner
from merkle.hashing import leaf_hashes
from merkle.note import Signer
from merkle.tiles import ENTRIES, TileId
from services.published import layout, reader
from services.published.reader import LogReader
from storage.errors import NotFoundError
from storage.memory import MemoryStore

ORIGIN = "waits.notar.test/log"
LOG, CLOCK = Signer.generate(ORIGIN), CosignatureSigner.generate(ORIGIN + "/clock")


class Log:
    """A log published to a memory store one size at a time, as the anchor does."""

    def __init__(self) -> None:
        self.store = MemoryStore()
        self.tiles, self.bundles = TileBuilder(), BundleBuilder()
        self.reads = 0
        get = self.store.get

        async def counting_get(key: str) -> bytes:
            self.reads += key == layout.checkpoint_key()
            return await get(key)

        self.store.get = counting_get  # type: ignore[method-assign]

    async def publish(self, size: int) -> None:
        entries = [os.urandom(33) for _ in range(size - self.tiles.size)]
        for t in self.tiles.append(leaf_hashes(entries)) + self.bundles.append(entries):
            await self.store.put(layout.tile_key(t.id), t.data)
        note = sign_checkpoint(Checkpoint(ORIGIN, size, self.tiles.root()), LOG, CLOCK, 1)
        await self.store.put(layout.checkpoint_key(), note.encode())


@pytest.fixture(autouse=True)
def short_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reader, "WAIT_S", 0.6)


async def later(log: Log, size: int, delay: float) -> None:
    await asyncio.sleep(delay)
    await log.publish(size)


async def test_a_proof_of_a_tree_published_meanwhile_waits_for_it() -> None:
    log = Log()
    await log.publish(10)
    r = LogReader(log.store, origin=ORIGIN)
    await r.checkpoint()  # cached: a second-old view is what a busy verify pod has
    publishing = asyncio.create_task(later(log, 300, 0.2))
    proofs = await asyncio.gather(*(r.inclusion_proof(i, 300) for i in range(0, 300, 10)))
    await publishing
    assert all(proofs)
    assert log.reads < len(proofs)  # the waiters share each read of the checkpoint


async def test_a_tree_that_does_not_come_is_404_after_the_wait() -> None:
    log = Log()
    await log.publish(10)
    r = LogReader(log.store, origin=ORIGIN)
    started = asyncio.get_running_loop().time()
    with pytest.raises(NotFoundError, match="no tree of size 11"):
        await r.consistency_proof(5, 11)
    assert asyncio.get_running_loop().time() - started >= reader.WAIT_S


async def test_a_tile_of_a_tree_not_yet_published_waits_for_it() -> None:
    log = Log()
    await log.publish(100)
    r = LogReader(log.store, origin=ORIGIN)
    partial, bundle, full = TileId(0, 1, 44), TileId(ENTRIES, 1, 44), TileId(0, 0)
    publishing = asyncio.create_task(later(log, 300, 0.2))
    got = await asyncio.gather(r.tile(partial), r.tile(bundle), r.tile(full))
    await publishing
    assert list(got) == [await log.store.get(layout.tile_key(t)) for t in (partial, bundle, full)]


async def test_a_tile_no_published_tree_will_have_is_404() -> None:
    log = Log()
    await log.publish(300)
    r = LogReader(log.store, origin=ORIGIN)
    log.reads = 0
    with pytest.raises(NotFoundError):
        await r.tile(TileId(0, 0, 7))  # a width no published tree had: at once, no polling
    assert log.reads == 1
    started = asyncio.get_running_loop().time()
    with pytest.raises(NotFoundError):
        await r.tile(TileId(0, 5))  # a tree that is not coming: after the wait
    assert asyncio.get_running_loop().time() - started >= reader.WAIT_S and log.reads > 2
