"""Freezing a shard (services/anchor/freeze.py): each step on its own, then the whole of it as the
anchor's task runs it, with a real sequencer and committer (local chain) on one shard of a store
that holds the shard table."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import pytest

from merkle import parse_digest
from merkle.digests import Digest
from merkle.note import Signer
from services.anchor.chains.local import LocalChain
from services.anchor.committer import Committer
from services.anchor.erasure import Eraser
from services.anchor.freeze import (
    Freezer,
    ShardAnchor,
    drop_local_index,
    final_checkpoint,
    freeze,
    freezing,
    request_freeze,
    tombstone_erasures,
    wait_anchored,
)
from services.anchor.frozen_index import FrozenIndex, FrozenManifest, export, tombstoned
from services.anchor.keys import LogKeys
from services.anchor.rotation import load_history
from services.anchor.sequenced import SequencerStopped
from services.anchor.sequencer import Sequencer
from services.common.components import CommitterConfig
from services.published import layout
from services.published.anchors import AnchorStore
from services.published.shards import Shard, load_table, update_table
from storage.memory import MemoryIndex, MemoryStore
from storage.rocks import RocksIndex
from tests.services.anchor.conftest import ORIGIN, MakeSequencer, tenant_index

BASE = "test.notar/base"
SHARD = Shard(1, ORIGIN, "active", 1, None)  # the sequencers of conftest sign as ORIGIN
PREFIX = SHARD.prefix


async def no_remake(entry: bytes, index: int) -> bytes:
    raise AssertionError(f"no SCITT receipt was lost here (entry {index})")


def digest(i: int) -> Digest:
    return parse_digest(f"blake3:{i:064x}")


async def with_table(store: MemoryStore, *shards: Shard) -> None:
    await update_table(store, lambda _: shards)


def table(*states: str) -> tuple[Shard, ...]:
    return tuple(Shard(i, f"{BASE}/{i}" if i else BASE, s, i) for i, s in enumerate(states))


def test_a_shard_freezes_only_when_another_takes_the_writes() -> None:
    assert [s.state for s in freezing(table("active", "active"), 0)] == ["freezing", "active"]
    assert [s.state for s in freezing(table("frozen", "freezing", "active"), 1)][1] == "freezing"
    with pytest.raises(ValueError, match="only active shard"):
        freezing(table("frozen", "active"), 1)
    with pytest.raises(ValueError, match="frozen already"):
        freezing(table("frozen", "active"), 0)
    with pytest.raises(ValueError, match=r"no shard 5 .*shards: 0, 1"):
        freezing(table("active", "active"), 5)
    with pytest.raises(ValueError, match="table is empty"):
        freezing((), 0)


async def test_request_freeze_writes_the_table() -> None:
    store = MemoryStore()
    await with_table(store, *table("active", "active"))
    assert (await request_freeze(store, 1)).state == "freezing"
    assert [s.state for s in await load_table(store)] == ["active", "freezing"]
    with pytest.raises(ValueError, match="only active shard"):
        await request_freeze(store, 0)


async def test_a_sealed_sequencer_sequences_what_it_queued_and_refuses_the_rest(
    make_sequencer: MakeSequencer,
) -> None:
    store = MemoryStore()
    seq = await make_sequencer(store, batch_ms=50, batch_min_ms=50)
    queued = asyncio.create_task(seq.submit("acme", [digest(i) for i in range(10)]))
    await asyncio.sleep(0.01)  # queued, not yet in a batch
    assert seq.queued == 10
    size = await seq.seal("shard 1 is freezing")
    assert size == 10 == seq.stats.published_size and len(await queued) == 10
    refused = seq.refusal()
    assert isinstance(refused, SequencerStopped) and "shard 1 is freezing" in str(refused)
    with pytest.raises(SequencerStopped, match="freezing"):
        await seq.submit("acme", [digest(99)])
    assert seq.refusing is None and seq.stopped is None  # ready and alive: look-ups go on
    assert seq.spare == 0  # ingest's spread sends it nothing
    note = await final_checkpoint(store, "log/", size)
    assert note.split("\n")[1] == "10"
    with pytest.raises(Exception, match="size 10, the sealed log 11"):
        await final_checkpoint(store, "log/", 11)


async def test_wait_anchored_waits_for_every_kind() -> None:
    store = MemoryStore()
    await wait_anchored(store, PREFIX, 0, ["local"], poll_s=0.01)  # an empty log: nothing to anchor
    await wait_anchored(store, PREFIX, 5, [], poll_s=0.01)  # no anchors configured
    waiting = asyncio.create_task(wait_anchored(store, PREFIX, 5, ["local", "evm"], poll_s=0.01))
    await store.put_if_absent(layout.anchor_record_key(5, "local", PREFIX), b"{}")
    await store.put_if_absent(layout.anchor_record_key(4, "evm", PREFIX), b"{}")  # not the final size
    await asyncio.sleep(0.05)
    assert not waiting.done()
    await store.put_if_absent(layout.anchor_record_key(5, "evm", PREFIX), b"{}")
    await asyncio.wait_for(waiting, 5)


async def test_erasures_before_the_export_become_tombstones(make_sequencer: MakeSequencer) -> None:
    store, index = MemoryStore(), MemoryIndex()
    seq = await make_sequencer(store, index)
    await seq.submit("acme", [digest(1), digest(2)])
    manifest = await export(index, store, prefix=PREFIX, origin=ORIGIN, checkpoint="cp", size=seq.size)
    eraser = Eraser(index=index, tenant_index=tenant_index(), journal=store, prefix=PREFIX)
    assert await eraser.forget("acme", digest(1).multihash, wait_s=0) == 1  # RocksDB only: the files hold it
    frozen = FrozenIndex(store, tenant_index=tenant_index(), prefix=PREFIX)
    assert len(await frozen.lookup("acme", digest(1))) == 1
    assert await tombstone_erasures(store, PREFIX, frozen) == 1
    assert await frozen.lookup("acme", digest(1)) == []
    assert len(await frozen.lookup("acme", digest(2))) == 1 and manifest.rows == 2


async def test_an_erasure_while_freezing_writes_a_tombstone_too(make_sequencer: MakeSequencer) -> None:
    store, index = MemoryStore(), MemoryIndex()
    seq = await make_sequencer(store, index)
    await seq.submit("acme", [digest(1)])
    eraser = Eraser(index=index, tenant_index=tenant_index(), journal=store, prefix=PREFIX)
    eraser.tombstone_too(store)
    assert await eraser.forget("acme", digest(1).multihash, wait_s=0) == 1
    assert await tombstoned(store, PREFIX) == {tenant_index().prefix("acme", digest(1).multihash)[1:]}


async def freeze_rig(
    make_sequencer: MakeSequencer, keys: LogKeys, tmp_path: Path
) -> tuple[MemoryStore, RocksIndex, Sequencer, Eraser, Committer]:
    store = MemoryStore()
    await with_table(store, Shard(0, BASE, "active", 0), SHARD)
    index = RocksIndex.open(tmp_path / "index")
    seq = await make_sequencer(store, index, prefix=PREFIX)
    eraser = Eraser(index=index, tenant_index=tenant_index(), journal=store, prefix=PREFIX)
    await load_history(store, keys, PREFIX)  # the aggregating anchor checks shard 1's checkpoints
    committer = Committer(  # shard 0's: it anchors every shard, in aggregates (SPEC §10)
        store=store,
        backends=[LocalChain(store=store, signer=Signer.generate(BASE))],
        config=CommitterConfig(interval_s=0.05),
    )
    await committer.start()
    return store, index, seq, eraser, committer


async def test_the_anchors_task_freezes_its_shard_when_the_table_says_so(
    make_sequencer: MakeSequencer, keys: LogKeys, tmp_path: Path
) -> None:
    store, index, seq, eraser, committer = await freeze_rig(make_sequencer, keys, tmp_path)
    eraser_task = asyncio.create_task(eraser.run())
    frozen_events: list[FrozenManifest] = []

    async def on_frozen(manifest: FrozenManifest) -> None:
        frozen_events.append(manifest)

    backups = asyncio.create_task(asyncio.sleep(3600))
    anchor = ShardAnchor(store, seq, index, eraser, tenant_index(), ["local"], no_remake)
    freezer = Freezer(1, anchor, stop=[backups], on_frozen=on_frozen, poll_s=0.02)
    try:
        await seq.submit("acme", [digest(i) for i in range(50)])
        await seq.submit("globex", [digest(3)])
        await store.put_if_absent(
            layout.backup_file_key("20260101T000000000Z", "000009.sst", PREFIX), b"rows"
        )
        await store.put_if_absent(layout.backup_manifest_key("20260101T000000000Z", PREFIX), b"{}")
        await freezer.step()
        assert freezer.frozen is None and seq.refusal() is None  # active: nothing happens
        assert not backups.done()
        await request_freeze(store, 1)
        late = asyncio.create_task(seq.submit("acme", [digest(100)]))  # queued before the seal
        await freezer.step()
        manifest = freezer.frozen
        assert manifest is not None and frozen_events == [manifest] and backups.cancelled()
        assert manifest.size == seq.size == 51 + 1 and manifest.rows == 52 and len(await late) == 1
        assert manifest.checkpoint == (await store.get(layout.checkpoint_key(PREFIX))).decode()
        anchored = AnchorStore(store, prefix=PREFIX)  # by shard 0's aggregate, before the export
        assert await anchored.has(manifest.size, "local")
        assert [s.state for s in await load_table(store)] == ["active", "frozen"]
        assert not [k for k in store.objects if k.startswith(layout.backups(PREFIX))]  # the copy is frozen/
        with pytest.raises(SequencerStopped, match="freezing"):
            await seq.submit("acme", [digest(101)])
        frozen = FrozenIndex(store, tenant_index=tenant_index(), prefix=PREFIX)
        for tenant, i in (("acme", 3), ("globex", 3), ("acme", 100), ("globex", 4)):
            assert await frozen.lookup(tenant, digest(i)) == await seq.lookup(tenant, digest(i))
        assert await frozen.forget("acme", digest(3)) == 1
        await freezer.step()  # shard 0's anchor compacts; this one is not the lowest active shard
        assert await tombstoned(store, PREFIX) != set()
    finally:
        eraser_task.cancel()
        await committer.close()
        await seq.close()
        await index.close()
    parts = ShardAnchor(store, seq, MemoryIndex(), eraser, tenant_index(), [], no_remake)
    compactor = Freezer(0, parts, poll_s=0.02)
    await compactor.step()
    assert await tombstoned(store, PREFIX) == set()
    assert await frozen.lookup("acme", digest(3)) == []
    assert len(await frozen.lookup("acme", digest(4))) == 1
    drop_local_index(tmp_path / "index")
    assert not (tmp_path / "index").exists()


async def test_a_freeze_cut_short_resumes_after_a_restart(
    make_sequencer: MakeSequencer, keys: LogKeys, tmp_path: Path
) -> None:
    store, index, seq, eraser, committer = await freeze_rig(make_sequencer, keys, tmp_path)
    try:
        await seq.submit("acme", [digest(i) for i in range(20)])
        await request_freeze(store, 1)
        shard = next(s for s in await load_table(store) if s.id == 1)
        anchor = ShardAnchor(store, seq, index, eraser, tenant_index(), ["local"], no_remake)
        store.faults.inject("put_if_version", layout.frozen_manifest_key(PREFIX))  # dies before the manifest
        with pytest.raises(Exception, match="injected"):
            await freeze(shard, anchor, poll_s=0.02)
        assert [s.state for s in await load_table(store)] == ["active", "freezing"]
        manifest = await freeze(shard, anchor, poll_s=0.02)
        files = [k for k in store.objects if k.startswith(layout.frozen_files(PREFIX))]
        assert len(files) == len(manifest.files) and manifest.rows == 20  # the first try's files went
        assert [s.state for s in await load_table(store)] == ["active", "frozen"]
    finally:
        await committer.close()
        await seq.close()
        await index.close()


async def test_an_anchor_started_on_a_frozen_shard_takes_no_entries(make_sequencer: MakeSequencer) -> None:
    store, index = MemoryStore(), MemoryIndex()
    await with_table(store, Shard(0, BASE, "active", 0), replace(SHARD, state="frozen"))
    seq = await make_sequencer(store, index, prefix=PREFIX)
    assert seq.refusal() is None
    eraser = Eraser(index=index, tenant_index=tenant_index(), journal=store, prefix=PREFIX)
    backups = asyncio.create_task(asyncio.sleep(3600))
    parts = ShardAnchor(store, seq, index, eraser, tenant_index(), [], no_remake)
    await Freezer(1, parts, stop=[backups]).step()
    await asyncio.sleep(0)
    assert backups.cancelled()
    with pytest.raises(SequencerStopped, match="is frozen"):
        await seq.submit("acme", [digest(1)])
