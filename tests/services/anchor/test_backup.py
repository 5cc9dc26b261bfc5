"""Backups of the anchor's index (services/anchor/backup.py) and the start on a restored index
(recovery.py): what a backup holds, its manifest last, retention, a damaged or missing backup,
and a restored anchor that takes the published log as it is, reports the salts it lost, never
gives an index twice and erases again what was erased after the backup."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from merkle import parse_digest
from services.anchor import state
from services.anchor.backup import BackupError, Backups, Manifest, after_restore, list_backups, restore
from services.anchor.erasure import Eraser
from services.anchor.recovery import RecoveryError
from services.published import layout
from services.published.restores import LostSalts, read_restores
from storage.errors import ConfigError
from storage.fs import FsStore
from storage.memory import MemoryStore
from storage.rocks import RocksIndex
from tests.services.anchor.conftest import ORIGIN, MakeSequencer, found, tenant_index

KEPT, ERASED, AFTER, LATER = (parse_digest("sha256:" + f"{b:02x}" * 32) for b in (1, 2, 3, 4))
STATEMENT = bytes([0x03]) + b"\x5c" * 32  # a SCITT statement's entry (type 0x03)


def backups(store: MemoryStore | FsStore, index: RocksIndex, tmp: Path, **kw: object) -> Backups:
    settings: dict[str, object] = {"keep": 3, "interval_s": 3600.0, **kw}
    return Backups(store=store, index=index, origin=ORIGIN, scratch=tmp / "scratch", **settings)  # type: ignore[arg-type]


async def test_a_backup_is_the_index_files_then_its_manifest(tmp_path: Path) -> None:
    store, index = MemoryStore(), RocksIndex.open(tmp_path / "index")
    try:
        await index.write_batch({state.HEAD: state.u64(7), b"t" + b"x" * 24: b"s" * 16, state.HOLDER: b"me"})
        manifest = await backups(store, index, tmp_path).take()
    finally:
        await index.close()
    assert manifest.entries == 7 and manifest.origin == ORIGIN
    names = {f.name for f in manifest.files}
    assert "CURRENT" in names and any(n.endswith(".sst") for n in names)
    puts = [key for op, key in store.faults.journal if op in ("put_if_absent", "put_stream")]
    assert puts[-1] == layout.backup_manifest_key(manifest.id)  # last: a backup without it is incomplete
    assert sorted(puts[:-1]) == sorted(layout.backup_file_key(manifest.id, n) for n in names)
    assert Manifest.from_json(await store.get(layout.backup_manifest_key(manifest.id))) == manifest
    assert not (tmp_path / "scratch").exists()  # the checkpoint is removed once uploaded

    restored = tmp_path / "restored"
    assert await restore(store, restored, open_index=RocksIndex.open) == manifest
    copy = RocksIndex.open(restored)
    try:
        assert await copy.get(b"t" + b"x" * 24) == b"s" * 16
        assert await copy.get(state.HEAD) == state.u64(7)
        assert await copy.get(state.HOLDER) is None  # a restored anchor waits out the old lease
        assert await copy.get(state.RESTORED) is not None
    finally:
        await copy.close()


async def test_pruning_keeps_the_newest_and_drops_the_incomplete(tmp_path: Path) -> None:
    store, index = MemoryStore(), RocksIndex.open(tmp_path / "index")
    clock = iter(range(1_700_000_000, 1_700_000_100, 10))
    taker = backups(store, index, tmp_path, keep=2, clock=lambda: float(next(clock)))
    try:
        taken = [await taker.take() for _ in range(4)]
        await store.put(layout.backup_file_key("20000101T000000000Z", "CURRENT"), b"half a backup")
        assert sorted(await taker.prune()) == sorted([taken[0].id, taken[1].id, "20000101T000000000Z"])
    finally:
        await index.close()
    complete, incomplete = await list_backups(store)
    assert [m.id for m in complete] == [taken[2].id, taken[3].id] and not incomplete
    left = [k async for k in store.list(layout.backups())]
    assert all(layout.backup_id_of(k) in {taken[2].id, taken[3].id} for k in left)


async def test_a_failed_backup_is_counted_and_retried(tmp_path: Path) -> None:
    store, index = MemoryStore(), RocksIndex.open(tmp_path / "index")
    store.faults.inject("put_stream", key="*CURRENT", times=1)
    taker = backups(store, index, tmp_path, interval_s=0.05)
    task = asyncio.create_task(taker.run())
    try:
        async with asyncio.timeout(20):
            while len((await list_backups(store))[0]) < 2:
                await asyncio.sleep(0.02)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await index.close()
    assert taker.stats.failures == 1
    assert taker.stats.last_success is not None and taker.stats.size > 0


async def test_the_schedule_waits_for_the_newest_backup_to_be_an_interval_old(tmp_path: Path) -> None:
    store, index = MemoryStore(), RocksIndex.open(tmp_path / "index")
    try:
        await backups(store, index, tmp_path).take()
        task = asyncio.create_task(backups(store, index, tmp_path, interval_s=3600.0).run())
        await asyncio.sleep(0.5)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    finally:
        await index.close()
    assert len((await list_backups(store))[0]) == 1  # the restarted anchor took none: not due


async def test_a_restore_refuses_a_used_directory_an_unknown_id_and_a_damaged_file(tmp_path: Path) -> None:
    store, index = MemoryStore(), RocksIndex.open(tmp_path / "index")
    with pytest.raises(ConfigError, match="no complete backup"):
        await restore(store, tmp_path / "restored", open_index=RocksIndex.open)
    try:
        await index.write_batch({state.HEAD: state.u64(1), state.HOLDER: b"old"})
        manifest = await backups(store, index, tmp_path).take()
    finally:
        await index.close()
    with pytest.raises(ConfigError, match="not empty"):
        await restore(store, tmp_path / "index", open_index=RocksIndex.open)
    with pytest.raises(ConfigError, match=manifest.id):
        await restore(store, tmp_path / "restored", open_index=RocksIndex.open, backup="19990101T000000000Z")
    current = layout.backup_file_key(manifest.id, "CURRENT")
    await store.delete(current)
    await store.put_if_absent(current, b"MANIFEST-999999\n")
    with pytest.raises(BackupError, match="damaged"):
        await restore(store, tmp_path / "restored", open_index=RocksIndex.open)
    assert not (tmp_path / "restored").exists() and not (tmp_path / "restored.restoring").exists()


async def test_a_restore_replaces_an_index_that_never_assigned_an_entry(tmp_path: Path) -> None:
    """What an anchor started on a new, empty volume made before it refused the published log."""
    store, index = MemoryStore(), RocksIndex.open(tmp_path / "index")
    try:
        await index.write_batch({state.HEAD: state.u64(5)})
        await backups(store, index, tmp_path).take()
    finally:
        await index.close()
    fresh = RocksIndex.open(tmp_path / "new")
    await fresh.write_batch({state.HOLDER: b"the new pod"})
    await fresh.close()
    assert (await restore(store, tmp_path / "new", open_index=RocksIndex.open)).entries == 5
    copy = RocksIndex.open(tmp_path / "new")
    try:
        assert await copy.get(state.HEAD) == state.u64(5) and await copy.get(state.HOLDER) is None
    finally:
        await copy.close()


async def test_a_restored_anchor_takes_the_published_log_and_reports_the_lost_salts(
    tmp_path: Path, make_sequencer: MakeSequencer
) -> None:
    store, index = MemoryStore(), RocksIndex.open(tmp_path / "index")
    seq = await make_sequencer(store, index)
    eraser = Eraser(index=index, tenant_index=tenant_index(), journal=store)
    kept = await seq.submit("acme", [KEPT, ERASED])
    manifest = await backups(store, index, tmp_path).take()
    assert manifest.entries == 2
    after = await seq.submit("acme", [AFTER])
    (statement,) = await seq.submit_entries([STATEMENT])  # a SCITT statement, after the backup
    assert await eraser.forget("acme", ERASED.multihash, wait_s=0) == 1  # erased after the backup
    await seq.close()
    await index.close()  # the volume is lost: the index with it

    await restore(store, tmp_path / "restored", open_index=RocksIndex.open)
    restored = RocksIndex.open(tmp_path / "restored")
    seq2 = await make_sequencer(store, restored)
    eraser2 = Eraser(index=restored, tenant_index=tenant_index(), journal=store)
    await after_restore(restored, eraser2)
    try:
        assert seq2.size == 4  # the published log as it is
        assert await seq2.lookup("acme", KEPT) == found(kept[0])
        # the statement's entry is in the log as it is: indexed again, found again, not logged twice
        assert await seq2.entry_index(STATEMENT) == statement.index == 3
        assert await seq2.entry_index(bytes([0x03]) + b"\x77" * 32) is None
        assert await seq2.lookup("acme", AFTER) == []  # its salt was only in the lost index
        assert await seq2.lookup("acme", ERASED) == []  # erased again from the journal
        assert await restored.get(state.RESTORED) is None
        assert [(r.backup, r.lost) for r in await read_restores(store)] == [(manifest.id, range(2, 4))]
        explained = await LostSalts(store).explain()
        assert "entries 2 to 3" in explained and manifest.id in explained
        later = await seq2.submit("acme", [LATER])
        assert later[0].index == 4 and after[0].index == 2  # no index given twice
        assert later[0].checkpoint.split("\n")[1] == "5"
    finally:
        await seq2.close()
        await restored.close()


async def test_an_old_index_not_restored_by_notar_is_still_refused(
    tmp_path: Path, make_sequencer: MakeSequencer
) -> None:
    """Only a restore marks an index as allowed to be behind the published log."""
    store, index = MemoryStore(), RocksIndex.open(tmp_path / "index")
    seq = await make_sequencer(store, index)
    await seq.submit("acme", [KEPT])
    await index.checkpoint(tmp_path / "copy")
    await seq.submit("acme", [AFTER])
    await seq.close()
    await index.close()
    copy = RocksIndex.open(tmp_path / "copy")
    try:
        with pytest.raises(RecoveryError, match="assigned only 1"):
            await make_sequencer(store, copy)
    finally:
        await copy.close()


def test_backup_ids_sort_as_their_times() -> None:
    from services.anchor.backup import backup_id

    times = [1_700_000_000.0, 1_700_000_000.5, 1_700_000_001.25, 1_800_000_000.0]
    ids = [backup_id(t) for t in times]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert ids[1] == time.strftime("%Y%m%dT%H%M%S", time.gmtime(times[1])) + "500Z"


async def test_a_start_that_fails_after_taking_the_lease_gives_it_back(
    tmp_path: Path, make_sequencer: MakeSequencer
) -> None:
    """An anchor on a new, empty volume is refused; the restored one then starts at once."""
    store, index = MemoryStore(), RocksIndex.open(tmp_path / "index")
    seq = await make_sequencer(store, index)
    await seq.submit("acme", [KEPT])
    await backups(store, index, tmp_path).take()
    await seq.close()
    await index.close()
    empty = RocksIndex.open(tmp_path / "new")
    try:
        with pytest.raises(RecoveryError, match="notar backup restore"):
            await make_sequencer(store, empty)
    finally:
        await empty.close()
    lease = json.loads(await store.get(layout.lease_key()))
    assert lease["until"] == 0  # released
    await restore(store, tmp_path / "new", open_index=RocksIndex.open)
    restored = RocksIndex.open(tmp_path / "new")
    seq = await make_sequencer(store, restored)
    try:
        assert seq.size == 1
    finally:
        await seq.close()
        await restored.close()
