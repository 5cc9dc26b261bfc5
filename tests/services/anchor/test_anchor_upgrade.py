"""Which anchored checkpoint a receipt is upgraded to (AnchorStore.best_for, as the verify service
asks): the one holding the entry with the most anchor kinds, the earliest of those. Found by the
anvil-outage chaos scenario: entries acknowledged while the EVM chain was down (or while the EVM
anchor waited for confirmations and skipped rounds) were anchored first by `local` alone, and their
receipts were never upgraded with the EVM anchor that came after."""

from __future__ import annotations

import hashlib

from merkle.checkpoint import Checkpoint, sign_checkpoint
from merkle.cosignature import CosignatureSigner
from merkle.note import Signer
from services.published.anchors import AnchorStore
from storage.memory import MemoryStore

ORIGIN = "upgrade.notar.test/log"
LOG = Signer.generate(ORIGIN)
CLOCK = CosignatureSigner.generate(ORIGIN + "/clock")


def note(size: int) -> str:
    cp = Checkpoint(ORIGIN, size, hashlib.sha256(str(size).encode()).digest())
    return sign_checkpoint(cp, LOG, CLOCK, 1_700_000_000 + size)


async def anchor(store: AnchorStore, size: int, *kinds: str) -> None:
    for kind in kinds:
        await store.put(size, note(size), {"type": kind, "tree_size": size})


async def upgraded(store: AnchorStore, index: int) -> tuple[int, list[str]] | None:
    found = await store.best_for(index)
    if found is None:
        return None
    size = int(found[0].splitlines()[1])
    return size, [str(r["type"]) for r in found[1]]


async def test_a_kind_that_was_down_reaches_the_receipts_of_that_time() -> None:
    objects = MemoryStore()
    writer = AnchorStore(objects)  # the committer's
    await anchor(writer, 10, "local", "evm")
    for size in (20, 30, 40):  # the EVM chain is down: local goes on alone
        await anchor(writer, size, "local")
    await anchor(writer, 50, "local", "evm")  # back
    await anchor(writer, 60, "local")  # the EVM anchor waits for confirmations, skips a round
    now = [0.0]
    reader = AnchorStore(objects, refresh_s=5, clock=lambda: now[0])  # a verify pod's
    assert await upgraded(reader, 4) == (10, ["local", "evm"]), "the earliest, when it has every kind"
    assert await upgraded(reader, 15) == (50, ["local", "evm"]), "not 20, which only the service vouches for"
    assert await upgraded(reader, 45) == (50, ["local", "evm"])
    assert await upgraded(reader, 55) == (60, ["local"]), "none later has evm yet: the earliest"
    assert await upgraded(writer, 15) == (50, ["local", "evm"]), "the writer's own cache knows it too"
    await anchor(writer, 70, "local", "evm")  # the EVM anchor skipped 60 and joined the next round
    assert await upgraded(reader, 55) == (60, ["local"]), "re-listed at most every refresh_s"
    now[0] = 6
    assert await upgraded(reader, 55) == (70, ["local", "evm"])
    assert await upgraded(reader, 70) is None


async def test_the_most_kinds_win_then_the_earliest() -> None:
    """The candidates are the earliest anchored checkpoint holding the entry and, per kind, the
    earliest holding it that this kind anchored."""
    objects = MemoryStore()
    writer = AnchorStore(objects)
    await anchor(writer, 10, "local", "evm")  # the TSA was down
    await anchor(writer, 20, "local", "rfc3161")  # the EVM anchor was busy
    await anchor(writer, 30, "local", "evm", "rfc3161")
    await anchor(writer, 40, "local", "evm", "rfc3161")
    reader = AnchorStore(objects)
    assert await upgraded(reader, 5) == (10, ["local", "evm"]), "10 and 20 have two kinds each: the earliest"
    assert await upgraded(reader, 15) == (30, ["local", "evm", "rfc3161"])
    assert await upgraded(reader, 35) == (40, ["local", "evm", "rfc3161"])


async def test_a_record_whose_checkpoint_note_is_missing_is_not_chosen() -> None:
    objects = MemoryStore()
    writer = AnchorStore(objects)
    await anchor(writer, 10, "local")
    # a crash between the record and its checkpoint note: the record alone is no anchored checkpoint
    await objects.put("log/anchors/record/00000000000000000020/evm.json", b'{"type":"evm"}')
    await anchor(writer, 30, "local")
    reader = AnchorStore(objects)
    assert await upgraded(reader, 5) == (10, ["local"])
    assert await upgraded(reader, 15) == (30, ["local"])
