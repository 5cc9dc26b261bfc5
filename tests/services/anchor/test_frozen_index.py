"""A frozen shard's tenant index in the object store (services/anchor/frozen_index.py): the export
answers every look-up as RocksDB did, with range GETs of a few blocks; an erasure is a tombstone
honoured at once; a compaction rewrites the files without the erased rows' bytes."""

from __future__ import annotations

import itertools
import random
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from merkle import parse_digest
from merkle.digests import Digest
from services.anchor.frozen_index import (
    RECORD,
    FrozenIndex,
    FrozenManifest,
    compact,
    export,
    tombstoned,
    write_files,
)
from services.anchor.sequencer import Sequencer
from services.published import layout
from storage.base import ObjectStore
from storage.errors import ConflictError, CorruptedError
from storage.memory import MemoryIndex, MemoryStore
from storage.rocks import RocksIndex
from storage.s3 import S3Store
from tests.seaweed import S3Target
from tests.services.anchor.conftest import MakeSequencer, tenant_index

PREFIX = "log/3/"
TENANTS = ("acme", "globex", "initech")


class CountingStore(MemoryStore):
    """A MemoryStore that records every read: (op, key)."""

    def __init__(self) -> None:
        super().__init__()
        self.reads: list[tuple[str, str]] = []

    async def get(self, key: str) -> bytes:
        self.reads.append(("get", key))
        return await super().get(key)

    async def get_range(self, key: str, start: int, end: int) -> bytes:
        self.reads.append(("get_range", key))
        return (await MemoryStore.get_versioned(self, key)).data[start:end]


def digest(i: int) -> Digest:
    return parse_digest(f"blake3:{i:064x}")


async def notarize(seq: Sequencer, n: int, *, seed: int = 7) -> list[tuple[str, Digest]]:
    """n notarizations: some digests many times by one tenant, some by several tenants."""
    rng = random.Random(seed)
    done: list[tuple[str, Digest]] = []
    for _ in range(n // 10):
        batch = [(rng.choice(TENANTS), digest(rng.randrange(n // 3))) for _ in range(10)]
        for tenant, group in itertools.groupby(sorted(batch, key=lambda b: b[0]), key=lambda b: b[0]):
            ds = [d for _, d in group]
            await seq.submit(tenant, ds)
            done.extend((tenant, d) for d in ds)
    return done


async def frozen_copy(
    make_sequencer: MakeSequencer, store: ObjectStore, n: int = 600, **sizes: int
) -> tuple[Sequencer, FrozenManifest, list[tuple[str, Digest]]]:
    index = MemoryIndex()
    seq = await make_sequencer(MemoryStore(), index, repeats_max=0)
    done = await notarize(seq, n)
    manifest = await export(
        index, store, prefix=PREFIX, origin=seq.origin, checkpoint="cp", size=seq.size, **sizes
    )
    return seq, manifest, done


async def test_every_look_up_answers_as_rocksdb_did(make_sequencer: MakeSequencer) -> None:
    store = CountingStore()
    seq, manifest, done = await frozen_copy(make_sequencer, store, block_rows=8, file_rows=50)
    assert manifest.rows == len(done) and len(manifest.files) > 5
    frozen = FrozenIndex(store, tenant_index=tenant_index(), prefix=PREFIX)
    for tenant, d in sorted(set(done), key=str)[:150]:
        want = await seq.lookup(tenant, d)
        assert len(want) >= 1
        assert await frozen.lookup(tenant, d) == want
        assert await frozen.lookup(tenant, d, limit=1) == want[:1]
        assert await frozen.lookup(tenant, d, after=want[0].index) == want[1:]
    never = digest(10**9)
    assert await frozen.lookup("acme", never) == []
    with pytest.raises(ValueError, match="tenant name"):
        await frozen.lookup("no tenant", never)


async def test_a_name_repeated_across_a_file_boundary_stays_in_one_file(
    make_sequencer: MakeSequencer,
) -> None:
    store = MemoryStore()
    index = MemoryIndex()
    seq = await make_sequencer(MemoryStore(), index, repeats_max=0)
    for _ in range(5):
        await seq.submit("acme", [digest(i) for i in range(20)])
    manifest = await export(
        index,
        store,
        prefix=PREFIX,
        origin=seq.origin,
        checkpoint="cp",
        size=seq.size,
        block_rows=4,
        file_rows=7,
    )
    assert all(f.rows % 5 == 0 for f in manifest.files)  # each name's 5 rows in one file
    assert all(a.last < b.first for a, b in itertools.pairwise(manifest.files))
    frozen = FrozenIndex(store, tenant_index=tenant_index(), prefix=PREFIX)
    for i in range(20):
        assert await frozen.lookup("acme", digest(i)) == await seq.lookup("acme", digest(i))


async def test_a_look_up_reads_a_tombstone_and_one_range_of_blocks(make_sequencer: MakeSequencer) -> None:
    store = CountingStore()
    seq, manifest, done = await frozen_copy(make_sequencer, store, block_rows=16)
    frozen = FrozenIndex(store, tenant_index=tenant_index(), prefix=PREFIX)
    tenant, d = done[0]
    await frozen.lookup(tenant, d)  # the manifest, and the file's fence, are read once
    store.reads.clear()
    tenant, d = done[1]
    assert await frozen.lookup(tenant, d) == await seq.lookup(tenant, d)
    files = layout.frozen_files(PREFIX)
    ops = [(op, key.startswith(files)) for op, key in store.reads]
    if manifest.file_for(frozen_name(tenant, d)) == manifest.file_for(frozen_name(*done[0])):
        assert ops == [("get", False), ("get_range", True), ("get_range", False)]  # tombstone, blocks, time
    else:  # + that file's fence
        assert ops == [("get", False), ("get_range", True), ("get_range", True), ("get_range", False)]
    assert store.reads[-1] == ("get_range", layout.frozen_times_key(PREFIX))  # its batch's time
    assert not [k for op, k in store.reads if op == "get" and k.startswith(files)]  # never a whole file


def frozen_name(tenant: str, d: Digest) -> bytes:
    return tenant_index().prefix(tenant, d.multihash)[1:]


async def test_an_erasure_is_a_tombstone_at_once_and_gone_from_the_files_after_compaction(
    make_sequencer: MakeSequencer,
) -> None:
    store = MemoryStore()
    seq, manifest, done = await frozen_copy(make_sequencer, store, block_rows=8, file_rows=100)
    frozen = FrozenIndex(store, tenant_index=tenant_index(), prefix=PREFIX)
    stale = FrozenIndex(store, tenant_index=tenant_index(), prefix=PREFIX)
    counts = {(t, d): done.count((t, d)) for t, d in done}
    (tenant, d), (other_tenant, other) = max(counts, key=counts.__getitem__), done[-1]
    assert (tenant, d) != (other_tenant, other)
    erased = await seq.lookup(tenant, d)
    kept = await seq.lookup(other_tenant, other)
    assert await stale.lookup(other_tenant, other) == kept  # it holds the old manifest and fence

    assert await frozen.forget(tenant, d) == counts[(tenant, d)] == len(erased)
    assert await frozen.lookup(tenant, d) == [] == await stale.lookup(tenant, d)
    assert await frozen.forget(tenant, d) == 0  # erased already: nothing written
    assert await frozen.forget("acme", digest(10**9)) == 0
    assert await tombstoned(store, PREFIX) == {frozen_name(tenant, d)}
    name = frozen_name(tenant, d)
    assert name in b"".join(v for k, v in store.objects.items() if k.startswith(layout.frozen_files(PREFIX)))

    assert await compact(store, prefix=PREFIX) == len(erased)
    files = b"".join(v for k, v in store.objects.items() if k.startswith(layout.frozen_files(PREFIX)))
    assert name not in files  # the bytes are gone, not only hidden
    assert await tombstoned(store, PREFIX) == set()
    after = FrozenManifest.from_json(store.objects[layout.frozen_manifest_key(PREFIX)])
    assert after.generation == 1 and after.rows == manifest.rows - len(erased)
    assert len([k for k in store.objects if k.startswith(layout.frozen_files(PREFIX))]) == len(after.files)
    assert await frozen.lookup(tenant, d) == [] == await stale.lookup(tenant, d)
    assert await stale.lookup(other_tenant, other) == kept  # its old file is gone: it rereads the manifest
    assert await compact(store, prefix=PREFIX) == 0  # nothing more to do


async def test_a_compaction_that_loses_the_race_leaves_no_file_behind(make_sequencer: MakeSequencer) -> None:
    store = MemoryStore()
    _seq, _manifest, done = await frozen_copy(make_sequencer, store)
    frozen = FrozenIndex(store, tenant_index=tenant_index(), prefix=PREFIX)
    await frozen.forget(*done[0])
    before = {k for k in store.objects if k.startswith(layout.frozen_files(PREFIX))}
    store.faults.inject(
        "put_if_version",
        layout.frozen_manifest_key(PREFIX),
        error=lambda op, key: ConflictError(f"{op} {key}"),
    )
    with pytest.raises(ConflictError):
        await compact(store, prefix=PREFIX)
    assert {k for k in store.objects if k.startswith(layout.frozen_files(PREFIX))} == before
    assert await tombstoned(store, PREFIX) == {frozen_name(*done[0])}  # for the next pass
    assert await frozen.lookup(*done[0]) == []


async def test_a_damaged_file_is_not_compacted(make_sequencer: MakeSequencer) -> None:
    store = MemoryStore()
    _seq, manifest, done = await frozen_copy(make_sequencer, store, file_rows=10_000)
    frozen = FrozenIndex(store, tenant_index=tenant_index(), prefix=PREFIX)
    await frozen.forget(*done[0])
    key = layout.frozen_file_key(manifest.files[0].file, PREFIX)
    data = bytearray(store.objects[key])
    data[RECORD + 30] ^= 1  # one bit of an encrypted salt: nothing but the SHA-256 can tell
    store.objects[key] = bytes(data)
    with pytest.raises(CorruptedError, match="SHA-256"):
        await compact(store, prefix=PREFIX)
    assert FrozenManifest.from_json(store.objects[layout.frozen_manifest_key(PREFIX)]) == manifest


async def test_an_export_cut_short_starts_again_and_a_finished_one_stands(
    make_sequencer: MakeSequencer,
) -> None:
    store = MemoryStore()
    index = MemoryIndex()
    seq = await make_sequencer(MemoryStore(), index)
    await seq.submit("acme", [digest(i) for i in range(30)])
    orphan = layout.frozen_file_key("00" * 16, PREFIX)
    await store.put_if_absent(orphan, b"half of an earlier export")
    args = {"prefix": PREFIX, "origin": seq.origin, "checkpoint": "cp", "size": seq.size}
    first = await export(index, store, **args)  # type: ignore[arg-type]
    assert orphan not in store.objects and first.rows == 30
    await seq.submit("acme", [digest(99)])
    assert await export(index, store, **args) == first  # type: ignore[arg-type]


async def test_records_out_of_order_are_refused() -> None:
    async def pages(*lists: list[bytes]) -> AsyncIterator[list[bytes]]:
        for page in lists:
            yield page

    for wrong in (
        [[b"\x02" * RECORD, b"\x01" * RECORD]],
        [[b"\x02" * RECORD], [], [b"\x02" * RECORD]],
        [[b"\x02"]],
    ):
        with pytest.raises(ValueError, match="ascending"):
            await write_files(MemoryStore(), pages(*wrong), prefix=PREFIX)


async def test_export_from_rocksdb(make_sequencer: MakeSequencer, tmp_path: Path) -> None:
    index = RocksIndex.open(tmp_path / "index")
    store = MemoryStore()
    try:
        seq = await make_sequencer(MemoryStore(), index)
        await seq.submit("acme", [digest(i) for i in range(300)])
        await seq.submit("globex", [digest(i) for i in range(0, 300, 7)])
        manifest = await export(
            index, store, prefix=PREFIX, origin=seq.origin, checkpoint="cp", size=seq.size
        )
        assert manifest.rows == 300 + 43
        frozen = FrozenIndex(store, tenant_index=tenant_index(), prefix=PREFIX)
        for tenant, i in (("acme", 5), ("globex", 7), ("globex", 8)):
            assert await frozen.lookup(tenant, digest(i)) == await seq.lookup(tenant, digest(i))
        await seq.close()
    finally:
        await index.close()


async def test_on_seaweedfs(make_sequencer: MakeSequencer, s3_target: S3Target) -> None:
    """The same on a real S3 server: streamed uploads, range GETs, the conditional manifest."""
    store = await S3Store.from_config(s3_target.config(prefix=f"frozen-{uuid.uuid4().hex[:12]}/"))
    try:
        seq, manifest, done = await frozen_copy(make_sequencer, store, n=400, block_rows=8, file_rows=60)
        frozen = FrozenIndex(store, tenant_index=tenant_index(), prefix=PREFIX)
        stale = FrozenIndex(store, tenant_index=tenant_index(), prefix=PREFIX)
        for tenant, d in done[:40]:
            assert await frozen.lookup(tenant, d) == await seq.lookup(tenant, d)
        assert await stale.lookup(*done[1]) == await seq.lookup(*done[1])
        erased = await seq.lookup(*done[0])
        assert await frozen.forget(*done[0]) == len(erased) >= 1
        assert await frozen.lookup(*done[0]) == []
        assert await compact(store, prefix=PREFIX) == len(erased)
        files = [await store.get(k) async for k in store.list(layout.frozen_files(PREFIX))]
        assert len(files) == len(manifest.files) and frozen_name(*done[0]) not in b"".join(files)
        assert await stale.lookup(*done[1]) == await seq.lookup(*done[1])  # reread the manifest
        assert await stale.lookup(*done[0]) == []
    finally:
        await store.close()


async def test_a_row_of_another_shape_stops_the_export() -> None:
    index = MemoryIndex()
    await index.write_batch({b"t" + bytes(24): bytes(16), b"t" + bytes(30): bytes(16)})
    with pytest.raises(CorruptedError, match="cannot be exported"):
        await export(index, MemoryStore(), prefix=PREFIX, origin="o", checkpoint="cp", size=2)
