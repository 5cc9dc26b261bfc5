"""The sequencer: durable batches, signed checkpoints, proofs, publication, recovery, one writer."""

from __future__ import annotations

import asyncio
import os
import random

import pytest

from merkle import parse_digest
from merkle.checkpoint import parse_checkpoint
from merkle.note import parse_note
from merkle.receipt import build_receipt, verify_receipt
from services.anchor import state
from services.anchor.keys import LogKeys
from services.anchor.publisher import LeaseHeldError
from services.anchor.recovery import RecoveryError
from services.anchor.sequencer import SequencerStopped
from services.model import Item, Sequenced
from storage.errors import ConflictError, PushbackError
from storage.memory import Faults, MemoryIndex, MemoryStore
from tests.logaudit import audit
from tests.services.anchor.conftest import ORIGIN, MakeSequencer


def digest(i: int) -> str:
    return "blake3:" + i.to_bytes(32, "big").hex()


def items(start: int, n: int, tenant: str = "acme", salted: bool = True) -> list[Item]:
    return [Item(tenant, parse_digest(digest(i)), salted) for i in range(start, start + n)]


def receipt_of(item: Item, s: Sequenced) -> dict[str, object]:
    return build_receipt(
        digest=item.digest,
        salt=s.salt,
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
    groups = [items(g * 1000, random.randint(1, 700)) for g in range(12)]
    results = await asyncio.gather(*(seq.submit(g) for g in groups))
    acked: dict[int, bytes] = {}
    for g, res in zip(groups, results, strict=True):
        assert len(res) == len(g)
        for it, s in zip(g, res, strict=True):
            assert s.entry == it.digest.multihash + s.salt and len(s.salt) == 16
            assert s.index not in acked
            acked[s.index] = s.entry
            if s.index % 97 == 0:
                v = verify_receipt(receipt_of(it, s), keys=keys.verifier_keys.values())
                assert v.valid, v.failed
    assert sorted(acked) == list(range(sum(map(len, groups))))
    salts = [e[34:] for e in acked.values()]
    assert len(set(salts)) == len(salts)
    await seq.close()
    await check_log(store, keys, acked, [r[0].checkpoint for r in results])


async def test_salts_come_from_one_csprng_call_per_batch(
    make_sequencer: MakeSequencer, keys: LogKeys
) -> None:
    calls: list[int] = []
    seq = await make_sequencer(start=False)

    def counting_urandom(n: int) -> bytes:
        calls.append(n)
        return os.urandom(n)

    seq._urandom = counting_urandom
    await seq.start()
    res = await seq.submit(items(0, 300) + items(300, 50, salted=False))
    assert calls == [300 * 16]
    assert all(r.salt == b"" for r in res[300:]) and len(res[299].entry) == 50


async def test_restart_continues_the_log(make_sequencer: MakeSequencer, keys: LogKeys) -> None:
    store, index = MemoryStore(), MemoryIndex()
    first = await make_sequencer(store, index)
    a = await first.submit(items(0, 300))
    await first.close()
    second = await make_sequencer(store, index)
    b = await second.submit(items(300, 10))
    assert b[0].index == 300
    await second.close()
    await check_log(store, keys, {s.index: s.entry for s in a + b}, [a[0].checkpoint, b[0].checkpoint])


async def test_crash_before_publication_loses_nothing(make_sequencer: MakeSequencer, keys: LogKeys) -> None:
    store, index = MemoryStore(), MemoryIndex()
    seq = await make_sequencer(store, index)
    await seq.submit(items(0, 5))
    store.faults.inject("put_if_absent", "log/tile/*", times=10**9)  # publication stalls
    acked = await seq.submit(items(5, 600))
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
        ("put_if_version", "log/lease"),
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
            res = await seq.submit(items(round_ * 100, 100))
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
    seq = await make_sequencer(batch_ms=200, queue_max=1000)
    first = asyncio.create_task(seq.submit(items(0, 900)))
    await asyncio.sleep(0)
    with pytest.raises(PushbackError) as e:
        await seq.submit(items(900, 200))
    assert e.value.retry_after >= 1
    assert len(await first) == 900
    assert len(await seq.submit(items(900, 200))) == 200  # recovered once drained


async def test_second_anchor_on_the_same_log_is_refused(make_sequencer: MakeSequencer) -> None:
    store = MemoryStore()
    a = await make_sequencer(store)
    await a.submit(items(0, 10))
    with pytest.raises(LeaseHeldError, match="one writer per log"):
        await make_sequencer(store, MemoryIndex())


async def test_a_writer_that_lost_the_log_stops_without_corrupting_it(
    make_sequencer: MakeSequencer, keys: LogKeys
) -> None:
    store = MemoryStore()
    a = await make_sequencer(store, lease_ttl_s=60)
    acked = await a.submit(items(0, 10))
    while a.stats.published_size < 10:
        await asyncio.sleep(0.01)
    # Someone overwrites the checkpoint behind A's back (say, an operator error).
    note = (await store.get("log/checkpoint")).decode()
    store.objects["log/checkpoint"] = note.encode()
    store._versions["log/checkpoint"] = "stolen"
    with pytest.raises((SequencerStopped, ConflictError)):
        for i in range(5):
            await a.submit(items(100 + i * 10, 10))
            await asyncio.sleep(0.05)
    assert isinstance(a.failed, ConflictError)
    await check_log(store, keys, {s.index: s.entry for s in acked}, [])


async def test_refuses_to_start_when_the_store_is_ahead_of_rocksdb(make_sequencer: MakeSequencer) -> None:
    store = MemoryStore()
    a = await make_sequencer(store)
    await a.submit(items(0, 10))
    await a.close()
    with pytest.raises(RecoveryError, match="assigned only 0"):
        await make_sequencer(store, MemoryIndex())


async def test_refuses_to_start_when_tiles_disagree_with_checkpoint(make_sequencer: MakeSequencer) -> None:
    store, index = MemoryStore(), MemoryIndex()
    a = await make_sequencer(store, index)
    await a.submit(items(0, 10))
    await a.close()
    store.objects["log/tile/0/000.p/10"] = bytes(320)
    with pytest.raises(RecoveryError, match="do not hash to the published checkpoint"):
        await make_sequencer(store, index)


async def test_tenant_private_index(make_sequencer: MakeSequencer) -> None:
    seq = await make_sequencer()
    d = parse_digest(digest(7))
    a = await seq.submit([Item("acme", d)])
    b = await seq.submit([Item("acme", d), Item("globex", d)])
    assert await seq.lookup("acme", d) == [(a[0].index, a[0].salt), (b[0].index, b[0].salt)]
    assert await seq.lookup("globex", d) == [(b[1].index, b[1].salt)]
    assert await seq.lookup("initech", d) == []
    assert state.tenant_prefix("acme") != state.tenant_prefix("acme2")[: len(state.tenant_prefix("acme"))]
