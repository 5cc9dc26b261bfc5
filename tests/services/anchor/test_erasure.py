"""Erasure from the tenant index (services/anchor/erasure.py): the rows of one tenant's
notarizations of one digest go, nothing else does, and their bytes leave RocksDB's files; a
failed compaction is finished after a restart."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from rocksdict import DBCompressionType, Options

from merkle import parse_digest
from services.anchor import erasure
from services.anchor.erasure import PENDING, Eraser, after
from services.anchor.repeats import count_key
from services.anchor.tenant_index import TenantIndex
from storage import rocks
from storage.errors import StorageError
from storage.memory import MemoryIndex, MemoryStore
from storage.rocks import RocksIndex
from tests.services.anchor.conftest import MakeSequencer, found, tenant_index

D = parse_digest("blake3:" + "11" * 32)
OTHER = parse_digest("sha256:" + "22" * 32)


async def test_forget_erases_one_tenants_digest_and_nothing_else(make_sequencer: MakeSequencer) -> None:
    index = MemoryIndex()
    seq = await make_sequencer(MemoryStore(), index)
    first = await seq.submit("acme", [D, OTHER])
    again = await seq.submit("acme", [D])
    theirs = await seq.submit("globex", [D])
    eraser = Eraser(index=index, tenant_index=tenant_index())
    task = asyncio.create_task(eraser.run())
    try:
        assert await eraser.forget("acme", D.multihash) == 2
        assert await seq.lookup("acme", D) == []
        assert await seq.lookup("acme", OTHER) == found(first[1])
        assert await seq.lookup("globex", D) == found(theirs[0])
        assert await eraser.forget("acme", D.multihash) == 0  # nothing left: nothing written
        assert [k async for k, _ in index.scan(PENDING)] == []  # compacted, marks gone
        name = tenant_index().prefix("acme", D.multihash)
        compactions = [keys for op, keys in index.faults.journal if op == "compact"]
        count = count_key(name[1:])  # the name's count of repeats goes with its rows
        assert await index.get(count) is None
        ranges = (name, after(name), count, after(count))
        assert compactions[0] == ",".join(k.decode("latin-1") for k in ranges)
        assert again[0].index not in [f.index for f in await seq.lookup("acme", D)]
    finally:
        task.cancel()


async def test_a_failed_compaction_is_finished_after_a_restart(make_sequencer: MakeSequencer) -> None:
    index = MemoryIndex()
    seq = await make_sequencer(MemoryStore(), index)
    await seq.submit("acme", [D])
    index.faults.inject("compact", times=10)
    eraser = Eraser(index=index, tenant_index=tenant_index())
    task = asyncio.create_task(eraser.run())
    try:
        assert await eraser.forget("acme", D.multihash, wait_s=0.2) == 1  # deleted, not compacted
    finally:
        task.cancel()
    assert await seq.lookup("acme", D) == []
    assert len([k async for k, _ in index.scan(PENDING)]) == 1
    index.faults.clear()
    assert await Eraser(index=index, tenant_index=tenant_index()).compact_pending() == 1
    assert [k async for k, _ in index.scan(PENDING)] == []


async def test_a_bad_tenant_name_is_refused_before_anything_is_written() -> None:
    index = MemoryIndex()
    eraser = Eraser(index=index, tenant_index=tenant_index())
    with pytest.raises(ValueError, match="tenant name"):
        await eraser.forget("../acme", D.multihash)
    assert index.faults.journal == []


def files_holding(directory: Path, needle: bytes) -> list[str]:
    return [p.name for p in directory.rglob("*") if p.is_file() and needle in p.read_bytes()]


@pytest.fixture
def uncompressed(monkeypatch: pytest.MonkeyPatch) -> None:
    """RocksDB's options with table files uncompressed, so that a value's bytes are in the files
    exactly when the value is. Compressed (Snappy, the default), a value's first bytes may be
    encoded as a copy of like bytes before them (a row's key ends in its index's zero bytes): a
    search of the files then missed a live row in about 1 run of 180."""
    made = rocks._options

    def options() -> Options:
        chosen = made()
        chosen.set_compression_type(DBCompressionType.none())
        return chosen

    monkeypatch.setattr(rocks, "_options", options)


@pytest.mark.usefixtures("uncompressed")
async def test_erased_rows_leave_rocksdbs_files(make_sequencer: MakeSequencer, tmp_path: Path) -> None:
    """A RocksDB delete is a tombstone: without the compaction the salt stays on disk."""
    index = RocksIndex.open(tmp_path / "index")
    try:
        seq = await make_sequencer(MemoryStore(), index)
        kept = await seq.submit("acme", [D, OTHER])
        rows: TenantIndex = tenant_index()
        (erased_key, erased_value), (_, kept_value) = [
            next(iter(rows.rows(["acme"], [d.multihash], [s.index], [s.salt]).items()))
            for d, s in zip([D, OTHER], kept, strict=True)
        ]
        await index.compact([(b"t", b"u")])  # from the write-ahead log into table files
        assert files_holding(tmp_path / "index", erased_value), "the scan must find a live row"
        eraser = Eraser(index=index, tenant_index=rows)
        task = asyncio.create_task(eraser.run())
        try:
            assert await eraser.forget("acme", D.multihash) == 1
        finally:
            task.cancel()
        await seq.close()
        for needle in (erased_value, erased_key, erased_key[1:17]):
            assert files_holding(tmp_path / "index", needle) == [], needle.hex()
        assert files_holding(tmp_path / "index", kept_value)  # the rest stays
        assert await seq.lookup("acme", OTHER) == found(kept[1])
    finally:
        await index.close()


async def test_compaction_errors_are_retried(
    make_sequencer: MakeSequencer, monkeypatch: pytest.MonkeyPatch
) -> None:
    index = MemoryIndex()
    seq = await make_sequencer(MemoryStore(), index)
    await seq.submit("acme", [D])
    index.faults.inject("compact", error=lambda op, key: StorageError("disk on fire"))
    monkeypatch.setattr(erasure, "RETRY_S", 0.05)
    eraser = Eraser(index=index, tenant_index=tenant_index())
    task = asyncio.create_task(eraser.run())
    try:
        assert await eraser.forget("acme", D.multihash, wait_s=5) == 1
        assert [k async for k, _ in index.scan(PENDING)] == []
        assert [op for op, _ in index.faults.journal].count("compact") >= 3  # failed, then both
    finally:
        task.cancel()
