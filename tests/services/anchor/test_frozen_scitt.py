"""A frozen shard's SCITT registrations (services/anchor/frozen_scitt.py): the files and their
look-ups, the export again after a crash, and a statement registered in a shard that froze
since, still served with its first receipt by another shard's registrar."""

from __future__ import annotations

import hashlib
from collections.abc import Collection
from pathlib import Path

import pytest

from merkle.cose import verify_receipt
from services.anchor import state
from services.anchor.freeze import ShardAnchor, freeze, request_freeze
from services.anchor.frozen_scitt import FrozenScitt, ScittManifest, export
from services.anchor.frozen_shards import FrozenShards
from services.anchor.keys import LogKeys
from services.anchor.registrar import Registrar
from services.published import layout
from services.published.reader import LogReader
from services.published.shards import load_table
from storage.errors import NotFoundError
from storage.memory import MemoryIndex, MemoryStore
from tests.services.anchor.conftest import INDEX_KEY, ORIGIN, MakeSequencer, tenant_index
from tests.services.anchor.test_freeze import PREFIX, freeze_rig

ROWS = 300


def entry(i: int) -> bytes:
    return b"\x03" + hashlib.sha256(f"statement {i}".encode()).digest()


def receipt_of(i: int) -> bytes:
    return f"receipt of statement {i}".encode() * (1 + i % 5)  # of several lengths


async def scitt_rows(index: MemoryIndex, rows: range, *, lost: Collection[int] = ()) -> None:
    puts = {state.entry_key(entry(i)): state.u64(i) for i in rows}
    puts |= {state.receipt_key(entry(i)): receipt_of(i) for i in rows if i not in lost}
    await index.write_batch(puts)


def files_of(store: MemoryStore) -> set[str]:
    return {k for k in store.objects if k.startswith(layout.frozen_scitt_files(PREFIX))}


async def test_every_entry_is_found_with_its_receipt_and_no_other() -> None:
    store, index, remade = MemoryStore(), MemoryIndex(), []
    await scitt_rows(index, range(ROWS), lost={7, 150})
    await index.write_batch({b"t" + bytes(39): b"x", b"c": b"checkpoint"})  # rows of other kinds

    async def remake(e: bytes, i: int) -> bytes:
        remade.append(i)
        return receipt_of(i)

    manifest = await export(
        index, store, remake, prefix=PREFIX, origin=ORIGIN, size=ROWS, block_rows=8, file_rows=100
    )
    assert sorted(remade) == [7, 150]  # a receipt lost from RocksDB is made again, once
    assert manifest.rows == ROWS and len(manifest.files) == 3 and len(files_of(store)) == 3
    assert ScittManifest.from_json(await store.get(layout.frozen_scitt_manifest_key(PREFIX))) == manifest
    frozen = FrozenScitt(store, prefix=PREFIX)
    for i in range(ROWS):
        assert await frozen.find(entry(i)) == (i, receipt_of(i))
    for other in (b"\x03" + bytes(32), b"\x03" + b"\xff" * 32, entry(ROWS), entry(ROWS + 1)):
        assert await frozen.find(other) is None
    assert await FrozenScitt(store, prefix="log/9/").receipt(entry(1)) is None  # none exported there


async def test_an_export_cut_short_is_written_anew_and_a_done_one_is_kept() -> None:
    store, index = MemoryStore(), MemoryIndex()
    await scitt_rows(index, range(ROWS))

    async def remake(e: bytes, i: int) -> bytes:
        raise AssertionError("no receipt was lost")

    async def run() -> ScittManifest:
        return await export(index, store, remake, prefix=PREFIX, origin=ORIGIN, size=ROWS, file_rows=120)

    store.faults.inject("put_stream", layout.frozen_scitt_files(PREFIX) + "*", skip=1)  # the 2nd file
    with pytest.raises(Exception, match="injected"):
        await run()
    assert len(files_of(store)) == 1
    store.faults.inject("put_if_version", layout.frozen_scitt_manifest_key(PREFIX))  # before the manifest
    with pytest.raises(Exception, match="injected"):
        await run()
    assert len(files_of(store)) == 3
    manifest = await run()
    assert files_of(store) == {layout.frozen_scitt_file_key(f.file, PREFIX) for f in manifest.files}
    assert manifest.rows == ROWS
    await index.write_batch({}, [state.entry_key(entry(0))])
    assert await run() == manifest  # done: the manifest stands, nothing is written again
    assert await FrozenScitt(store, prefix=PREFIX).find(entry(0)) == (0, receipt_of(0))


async def test_a_statement_of_a_frozen_shard_keeps_its_first_receipt(
    make_sequencer: MakeSequencer, keys: LogKeys, tmp_path: Path
) -> None:
    store, index, seq, eraser, committer = await freeze_rig(make_sequencer, keys, tmp_path)
    try:
        registrar = Registrar(
            sequencer=seq, index=index, keys=keys, reader=LogReader(store, prefix=PREFIX, origin=ORIGIN)
        )
        first = await registrar.register(entry(1), wait_s=10)
        lost = await registrar.register(entry(2), wait_s=10)
        assert first is not None and lost is not None
        await index.write_batch({}, [state.receipt_key(entry(2))])  # unsynced: lost in a crash
        await request_freeze(store, 1)
        shard = next(s for s in await load_table(store) if s.id == 1)
        parts = ShardAnchor(store, seq, index, eraser, tenant_index(), ["local"], registrar.remake)
        store.faults.inject("put_if_version", layout.frozen_scitt_manifest_key(PREFIX))  # a crash there
        with pytest.raises(Exception, match="injected"):
            await freeze(shard, parts, poll_s=0.02)
        assert [s.state for s in await load_table(store)] == ["active", "freezing"]
        assert layout.frozen_manifest_key(PREFIX) in store.objects  # the tenant index was exported
        await freeze(shard, parts, poll_s=0.02)  # the anchor restarted: the freeze resumes
        assert [s.state for s in await load_table(store)] == ["active", "frozen"]
        assert len(files_of(store)) == 1  # the first try's file went
    finally:
        await committer.close()
        await seq.close()
        await index.close()

    # another shard's anchor (its RocksDB knows none of them) reads the frozen shard's files
    frozen = FrozenShards(store, INDEX_KEY)
    other = await make_sequencer(store, MemoryIndex(), prefix="log/2/")
    reader = LogReader(store, prefix="log/2/", origin=ORIGIN)
    other_registrar = Registrar(sequencer=other, index=MemoryIndex(), keys=keys, reader=reader)
    with pytest.raises(NotFoundError):  # not before it reads the frozen shards
        await other_registrar.receipt(entry(1))
    other_registrar.read_frozen(frozen.scitt_receipt)
    assert await other_registrar.receipt(entry(1)) == first
    assert await other_registrar.register(entry(1), wait_s=10) == first  # not logged again
    remade = await other_registrar.receipt(entry(2))
    assert remade is not None and verify_receipt(remade, [keys.log.verifier()], entry(2)).index == 1
    assert other.size == 0
    with pytest.raises(NotFoundError):
        await other_registrar.receipt(entry(3))
