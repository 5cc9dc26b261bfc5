"""The sequencer: v2 entries at random places of their batch, durable batches, signed checkpoints,
proofs, publication, recovery, one writer, and the format of the log it writes to."""

from __future__ import annotations

import asyncio
import os
import random

import pytest

from merkle import Digest, Receipt, make_entry, parse_digest, verify_receipt
from merkle.checkpoint import parse_checkpoint
from merkle.compact import batch_nodes
from merkle.note import parse_note
from services.anchor import state
from services.anchor.keys import LogKeys
from services.anchor.publisher import LeaseHeldError
from services.anchor.recovery import RecoveryError
from services.anchor.sequencer import SequencerStopped
from services.anchor.tenant_index import TENANT
from services.model import Sequenced
from services.published import layout
from storage.errors import ConflictError, PushbackError
from storage.memory import Faults, MemoryIndex, MemoryStore
from tests.logaudit import audit
from tests.services.anchor.conftest import ORIGIN, MakeSequencer, found


def digest(i: int) -> str:
    return "blake3:" + i.to_bytes(32, "big").hex()


def digests(start: int, n: int) -> list[Digest]:
    return [parse_digest(digest(i)) for i in range(start, start + n)]


def receipt_of(tenant: str, d: Digest, s: Sequenced) -> Receipt:
    return Receipt.build(
        digest=d,
        salt=s.salt,
        subject=tenant,
        origin=ORIGIN,
        index=s.index,
        tree_size=s.tree_size,
        inclusion=s.inclusion,
        checkpoint=s.checkpoint,
    )


async def check_log(
    store: MemoryStore, keys: LogKeys, acked: dict[int, bytes], checkpoints: list[str]
) -> None:
    """Every acknowledged entry is at its index in the final published log, every checkpoint
    handed out is consistent with the final one."""
    log = await audit(
        store,
        prefix="log/",
        origin=ORIGIN,
        log_key=keys.verifier_keys["log"],
        clock_key=keys.verifier_keys["clock"],
    )
    for index, entry in acked.items():
        assert log.entries[index] == entry, f"acknowledged entry {index} lost or changed"
    for note in checkpoints:
        assert log.consistent_with(parse_checkpoint(parse_note(note).text))


async def test_concurrent_submissions_get_unique_indices_and_valid_receipts(
    make_sequencer: MakeSequencer, keys: LogKeys
) -> None:
    store = MemoryStore()
    seq = await make_sequencer(store)
    groups = [(f"tenant-{g % 3}", digests(g * 1000, random.randint(1, 700))) for g in range(12)]
    # every other caller asks for its compact part's nodes instead of a proof per entry
    results = await asyncio.gather(
        *(seq.submit(t, ds, compact=g % 2 == 0) for g, (t, ds) in enumerate(groups))
    )
    acked: dict[int, bytes] = {}
    salts: set[bytes] = set()
    for (tenant, ds), res in zip(groups, results, strict=True):
        assert len(res) == len(ds)
        # either proof material follows from the other (the nodes lead to the checkpoint's root)
        assert res.nodes() == batch_nodes(res.indices, res.tree_size, res.proofs())
        for d, s in zip(ds, res, strict=True):
            assert len(s.salt) == 16 and s.entry == make_entry(d, s.salt, tenant)
            assert s.index not in acked
            acked[s.index] = s.entry
            salts.add(s.salt)
            if s.index % 97 == 0:
                v = verify_receipt(receipt_of(tenant, d, s), keys=keys.verifier_keys.values())
                assert v.valid, v.failed
    assert sorted(acked) == list(range(sum(len(ds) for _, ds in groups)))
    assert len(salts) == len(acked)
    await seq.close()
    await check_log(store, keys, acked, [r[0].checkpoint for r in results])


async def test_salts_and_places_come_from_one_csprng_call_per_batch(make_sequencer: MakeSequencer) -> None:
    calls: list[int] = []
    seq = await make_sequencer(start=False, batch_ms=50, batch_min_ms=50)

    def counting_urandom(n: int) -> bytes:
        calls.append(n)
        return os.urandom(n)

    seq._preparer._urandom = counting_urandom
    await seq.start()
    a, b = await asyncio.gather(seq.submit("acme", digests(0, 300)), seq.submit("globex", digests(300, 50)))
    assert calls == [350 * (16 + 8)]  # one batch: 16 bytes of salt and 8 of placement per entry
    assert len({r.salt for r in [*a, *b]}) == 350
    assert all(r.entry == make_entry(d, r.salt, "globex") for d, r in zip(digests(300, 50), b, strict=True))


async def test_the_entries_of_one_batch_are_placed_at_random(make_sequencer: MakeSequencer) -> None:
    """Placement is the CSPRNG's: the same draw gives the same places, and each caller still gets
    its results in its own order. Two requests of one batch interleave: with 300 and 200 entries
    placed uniformly, a contiguous or sorted run happens with probability ~1/C(500, 200)."""
    draw = os.urandom(500 * 24)
    seq = await make_sequencer(start=False, batch_ms=50, batch_min_ms=50)
    seq._preparer._urandom = lambda n: draw[:n]
    await seq.start()
    a, b = await asyncio.gather(seq.submit("acme", digests(0, 300)), seq.submit("globex", digests(300, 200)))
    mine, theirs = [r.index for r in a], [r.index for r in b]
    assert sorted(mine + theirs) == list(range(500))
    assert mine != sorted(mine) and theirs != sorted(theirs)
    assert min(theirs) < max(mine) and min(mine) < max(theirs)  # neither is a run before the other
    runs = sum(1 for i in range(1, 500) if (i in set(mine)) != (i - 1 in set(mine)))
    assert runs > 100  # ~240 switches between the two requests' entries when placed at random
    # The batch bundle kept in RocksDB is in index order, as recovery re-reads it.
    bundle = await seq._index.get(state.batch_key(0))
    by_index = {r.index: r.entry for r in [*a, *b]}
    assert bundle is not None and bundle == b"".join(b"\x00\x21" + by_index[i] for i in range(500))
    # The same draw on a fresh log gives the same places: nothing but the draw decides them.
    again = await make_sequencer(start=False, batch_ms=50, batch_min_ms=50)
    again._preparer._urandom = lambda n: draw[:n]
    await again.start()
    a2, b2 = await asyncio.gather(
        again.submit("acme", digests(0, 300)), again.submit("globex", digests(300, 200))
    )
    assert [r.index for r in a2] == mine and [r.index for r in b2] == theirs


async def test_restart_continues_the_log(make_sequencer: MakeSequencer, keys: LogKeys) -> None:
    store, index = MemoryStore(), MemoryIndex()
    first = await make_sequencer(store, index)
    a = await first.submit("acme", digests(0, 300))
    await first.close()
    second = await make_sequencer(store, index)
    b = await second.submit("acme", digests(300, 10))
    assert sorted(r.index for r in b) == list(range(300, 310))
    await second.close()
    await check_log(store, keys, {s.index: s.entry for s in [*a, *b]}, [a[0].checkpoint, b[0].checkpoint])


async def test_crash_before_publication_loses_nothing(make_sequencer: MakeSequencer, keys: LogKeys) -> None:
    store, index = MemoryStore(), MemoryIndex()
    seq = await make_sequencer(store, index)
    await seq.submit("acme", digests(0, 5))
    store.faults.inject("put_if_absent", "log/tile/*", times=10**9)  # publication stalls
    acked = await seq.submit("acme", digests(5, 600))
    # "kill -9": abandon the sequencer without closing it
    for t in seq._tasks:
        t.cancel()
    seq._tasks = []
    store.faults.clear()
    again = await make_sequencer(store, index)
    assert again.size == 605
    await again.close()
    await check_log(store, keys, {s.index: s.entry for s in acked}, [acked[0].checkpoint])


@pytest.mark.parametrize("stored", [False, True], ids=["failed-not-stored", "failed-but-stored"])
@pytest.mark.parametrize(
    ("op", "key"),
    [
        ("put_if_absent", "log/tile/0/*"),
        ("put_if_absent", "log/tile/entries/*"),
        ("put_if_version", "log/checkpoint"),
        ("put_if_version", "private/log/lease"),
        ("write_batch", "b*"),
        ("compare_and_swap", "h"),
    ],
)
async def test_faults_at_every_step_lose_nothing(
    make_sequencer: MakeSequencer, keys: LogKeys, op: str, key: str, stored: bool
) -> None:
    faults = Faults()
    store = MemoryStore(faults=faults)
    index = MemoryIndex(faults=faults)
    seq = await make_sequencer(store, index, lease_ttl_s=0.3)
    acked: dict[int, bytes] = {}
    checkpoints: list[str] = []
    faults.inject(op, key, stored=stored, skip=1, times=2)
    for round_ in range(6):
        try:
            res = await seq.submit("acme", digests(round_ * 100, 100))
        except Exception:  # a batch that certainly was not written may be refused: the client retries
            assert op == "compare_and_swap" and not stored
            continue
        acked.update({s.index: s.entry for s in res})
        checkpoints.append(res[0].checkpoint)
    await asyncio.sleep(0.25)  # a lease renewal happens
    assert seq.failed is None
    await seq.close()
    restarted = await make_sequencer(store, index)
    await restarted.close()
    await check_log(store, keys, acked, checkpoints)


async def test_pushback_past_the_queue_bound(make_sequencer: MakeSequencer) -> None:
    seq = await make_sequencer(batch_ms=200, batch_min_ms=200, queue_max=1000)
    first = asyncio.create_task(seq.submit("acme", digests(0, 900)))
    await asyncio.sleep(0)
    with pytest.raises(PushbackError) as e:
        await seq.submit("acme", digests(900, 200))
    assert e.value.retry_after >= 1
    assert len(await first) == 900
    assert len(await seq.submit("acme", digests(900, 200))) == 200  # recovered once drained


async def test_second_anchor_on_the_same_log_is_refused(make_sequencer: MakeSequencer) -> None:
    store = MemoryStore()
    a = await make_sequencer(store)
    await a.submit("acme", digests(0, 10))
    with pytest.raises(LeaseHeldError, match="one writer per log"):
        await make_sequencer(store, MemoryIndex())


async def test_a_writer_that_lost_the_log_stops_without_corrupting_it(
    make_sequencer: MakeSequencer, keys: LogKeys
) -> None:
    store = MemoryStore()
    a = await make_sequencer(store, lease_ttl_s=60)
    acked = await a.submit("acme", digests(0, 10))
    while a.stats.published_size < 10:
        await asyncio.sleep(0.01)
    # Someone overwrites the checkpoint behind A's back (say, an operator error).
    note = (await store.get("log/checkpoint")).decode()
    store.objects["log/checkpoint"] = note.encode()
    store._versions["log/checkpoint"] = "stolen"
    with pytest.raises((SequencerStopped, ConflictError)):
        for i in range(5):
            await a.submit("acme", digests(100 + i * 10, 10))
            await asyncio.sleep(0.05)
    assert isinstance(a.failed, ConflictError)
    await check_log(store, keys, {s.index: s.entry for s in acked}, [])


async def test_refuses_to_start_when_the_store_is_ahead_of_rocksdb(make_sequencer: MakeSequencer) -> None:
    store = MemoryStore()
    a = await make_sequencer(store)
    await a.submit("acme", digests(0, 10))
    await a.close()
    with pytest.raises(RecoveryError, match="assigned only 0"):
        await make_sequencer(store, MemoryIndex())


async def test_refuses_to_start_when_tiles_disagree_with_checkpoint(make_sequencer: MakeSequencer) -> None:
    store, index = MemoryStore(), MemoryIndex()
    a = await make_sequencer(store, index)
    await a.submit("acme", digests(0, 10))
    await a.close()
    store.objects["log/tile/0/000.p/10"] = bytes(320)
    with pytest.raises(RecoveryError, match="do not hash to the published checkpoint"):
        await make_sequencer(store, index)


async def test_tenant_private_index(make_sequencer: MakeSequencer) -> None:
    seq = await make_sequencer()
    d = parse_digest(digest(7))
    a = await seq.submit("acme", [d])
    b, c = await asyncio.gather(seq.submit("acme", [d, *digests(100, 50)]), seq.submit("globex", [d]))
    assert await seq.lookup("acme", d) == found(a[0], b[0])
    assert await seq.lookup("globex", d) == found(c[0])
    assert await seq.lookup("initech", d) == []
    for other, s in zip(digests(100, 50), b[1:], strict=True):  # each row names its entry's own index
        assert await seq.lookup("acme", other) == found(s)
    with pytest.raises(ValueError, match="tenant name"):
        await seq.submit("not a tenant", [d])


async def test_published_objects_carry_cache_control_and_the_lease_is_private(
    make_sequencer: MakeSequencer,
) -> None:
    store = MemoryStore()
    seq = await make_sequencer(store)
    await seq.submit("acme", digests(0, 300))
    await seq.close()
    public = [k for k in store.objects if k.startswith("log/")]
    assert "log/checkpoint" in public and "log/tile/0/000" in public and "log/tile/entries/001.p/44" in public
    for key in public:
        expected = layout.CHECKPOINT_CACHE if key == "log/checkpoint" else layout.IMMUTABLE
        assert store.cache_control.get(key) == expected, key
    assert all(k.startswith(("log/checkpoint", "log/tile/")) for k in public)  # tlog-tiles and nothing else
    assert {"private/log/lease", "private/log/format"} <= set(store.objects)


async def test_pre_made_entries_are_sequenced_as_they_are_beside_notarizations(
    make_sequencer: MakeSequencer, keys: LogKeys
) -> None:
    """SCITT entries (type 0x03) go into the same batches as v2 ones, unsalted and without a
    tenant row; each one's index is written durably with its batch (state.entry_key)."""
    index = MemoryIndex()
    store = MemoryStore()
    seq = await make_sequencer(store, index)
    made = [bytes([0x03]) + os.urandom(32) for _ in range(5)]
    ds = digests(0, 20)
    ours, theirs = await asyncio.gather(seq.submit_entries(made), seq.submit("acme", ds))
    assert [s.entry for s in ours] == made and all(s.salt == b"" for s in ours)
    assert all(len(s.salt) == 16 for s in theirs)  # the notarizations are salted as ever
    assert len({s.index for s in [*ours, *theirs]}) == 25
    for entry, s in zip(made, ours, strict=True):
        assert await seq.entry_index(entry) == s.index
    assert await seq.entry_index(bytes([0x03]) + bytes(32)) is None
    tenant_rows = [k async for k, _ in index.scan(TENANT)]
    assert len(tenant_rows) == 20  # one per notarization, none for the SCITT entries
    acked = {s.index: s.entry for s in [*ours, *theirs]}
    await seq.close()
    await check_log(store, keys, acked, [ours[0].checkpoint])


async def test_pre_made_entries_of_another_shape_are_refused(make_sequencer: MakeSequencer) -> None:
    seq = await make_sequencer()
    for bad in (bytes([0x02]) + bytes(32), bytes([0x03]) + bytes(31), b""):
        with pytest.raises(ValueError, match="type 0x03"):
            await seq.submit_entries([bad])


def test_every_rocksdb_prefix_of_the_anchor_is_its_own() -> None:
    """The anchor's RocksDB rows of each kind start with their own byte: a scan of one kind's
    prefix (erasure marks, the tenant index…) never meets another kind's rows. SCITT's entry
    index once shared "e" with the erasure marks, whose compaction deletes every row it scans."""
    from services.anchor import erasure, state, tenant_index

    prefixes = {
        "head": state.HEAD,
        "batch": state.BATCH,
        "checkpoint": state.CHECKPOINT,
        "signed time": state.SIGNED_TIME,
        "holder": state.HOLDER,
        "restored": state.RESTORED,
        "scitt entry": state.ENTRY,
        "scitt receipt": state.RECEIPT,
        "repeat counts": state.REPEATS,
        "batch times": state.BATCH_TIME,
        "erasure mark": erasure.PENDING,
        "tenant index": tenant_index.TENANT,
    }
    assert len(set(prefixes.values())) == len(prefixes), prefixes
