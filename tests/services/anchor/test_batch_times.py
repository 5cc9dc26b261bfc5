"""Each batch's signed time, kept in RocksDB with the batch (batch_times.py) and exported with a frozen
index (frozen_times.py): every entry finds its own batch's time, entries of batches without a row
(a log written before these rows) find none, a restart keeps them, and the frozen copy answers as
RocksDB does; a batch recovered after a crash keeps its own time."""

from __future__ import annotations

import time

import pytest

from merkle import parse_digest
from services.anchor import state
from services.anchor.batch_times import signed_times
from services.anchor.frozen_times import FrozenTimes, export_times
from services.anchor.keys import LogKeys
from services.anchor.sequencer import Sequencer, SequencerConfig
from services.model import SequencedGroup
from services.published import layout
from services.verify.shards import clock_time
from storage.errors import CorruptedError
from storage.memory import MemoryIndex, MemoryStore
from tests.services.anchor.conftest import ORIGIN, MakeSequencer, found, tenant_index

PREFIX = "log/3/"


def digest(n: int) -> str:
    return "sha256:" + f"{n:064x}"


async def sequencer(keys: LogKeys, store: MemoryStore, index: MemoryIndex, now: list[float]) -> Sequencer:
    """A started sequencer whose clock says `now[0]`."""
    seq = Sequencer(
        store=store,
        index=index,
        keys=keys,
        config=SequencerConfig(origin=ORIGIN, batch_ms=5),
        tenant_index=tenant_index(),
        clock=lambda: now[0],
    )
    await seq.start()
    return seq


async def batches(keys: LogKeys, index: MemoryIndex, count: int) -> list[SequencedGroup]:
    """`count` batches of 1 to 3 entries, one after the other, each signed 2 s after the last."""
    now = [time.time()]
    seq = await sequencer(keys, MemoryStore(), index, now)
    made = []
    try:
        for b in range(count):
            now[0] += 2
            sent = [parse_digest(digest(10 * b + k)) for k in range(1 + b % 3)]
            made.append(await seq.submit("acme", sent))
    finally:
        await seq.close()
    assert len({f.signed_at for batch in made for f in found(*batch)}) == count  # a time a batch
    return made


async def test_each_entry_has_its_batchs_time_and_entries_before_the_rows_have_none(keys: LogKeys) -> None:
    index = MemoryIndex()
    made = await batches(keys, index, 4)
    rows = [(k, v) async for k, v in index.scan(state.BATCH_TIME)]
    assert len(rows) == 4  # one a batch
    every = [s for batch in made for s in batch]
    want = {f.index: f.signed_at for f in found(*every)}
    assert await signed_times(index, [s.index for s in every]) == want
    assert await signed_times(index, [max(want) + 1]) == {}  # not in the log yet
    # a log whose first batch was written before anchors kept these rows: no time for it, the
    # next batch's row (met by the scan) does not hold it
    await index.write_batch({}, [rows[0][0]])
    older = {s.index for s in made[0]}
    assert await signed_times(index, [s.index for s in every]) == {
        i: t for i, t in want.items() if i not in older
    }


async def test_a_restart_keeps_the_times_and_lookups_carry_them(make_sequencer: MakeSequencer) -> None:
    index, store = MemoryIndex(), MemoryStore()
    seq = await make_sequencer(store, index)
    d = parse_digest(digest(1))
    first = await seq.submit("acme", [d])
    await seq.close()
    again = await make_sequencer(store, index)
    second = await again.submit("acme", [d])
    assert await again.lookup("acme", d) == found(first[0], second[0])
    assert found(first[0])[0].signed_at is not None


async def test_a_batch_recovered_after_a_crash_keeps_the_time_its_callers_got(keys: LogKeys) -> None:
    store, index, now = MemoryStore(), MemoryIndex(), [time.time()]
    seq = await sequencer(keys, store, index, now)
    store.faults.inject("put_if_absent", "log/tile/*", times=10**9)  # publication stalls
    d = parse_digest(digest(1))
    acked = await seq.submit("acme", [d])
    for task in seq._tasks:  # "kill -9": abandoned, not closed
        task.cancel()
    store.faults.clear()
    now[0] += 60
    again = await sequencer(keys, store, index, now)
    try:
        published = (await store.get(layout.checkpoint_key())).decode()
        assert clock_time(published, ORIGIN) == int(now[0])  # recovery signed it anew, a minute on
        assert await again.lookup("acme", d) == found(*acked)  # the time of the checkpoint acked with
    finally:
        await again.close()


async def test_a_frozen_copy_answers_as_rocksdb(keys: LogKeys) -> None:
    index, store = MemoryIndex(), MemoryStore()
    made = await batches(keys, index, 9)
    [first_row] = [k async for k, _ in index.scan(state.BATCH_TIME, limit=1)]
    await index.write_batch({}, [first_row])  # its first batch has no time
    assert await FrozenTimes(store, prefix=PREFIX).signed_times([0, 1]) == {}  # not exported: none
    assert await export_times(index, store, prefix=PREFIX, block_rows=2) == 8
    frozen = FrozenTimes(store, prefix=PREFIX)
    indices = [s.index for batch in made for s in batch] + [10_000]
    want = await signed_times(index, indices)
    assert len(want) == len(indices) - 1 - len(made[0])
    assert await frozen.signed_times(indices) == want
    for i in indices:  # one at a time: each block and its neighbour's first record
        assert await frozen.signed_times([i]) == {k: t for k, t in want.items() if k == i}
    await store.put(layout.frozen_times_fence_key(PREFIX), b"not a fence")
    with pytest.raises(CorruptedError, match="fence"):
        await FrozenTimes(store, prefix=PREFIX).signed_times([0])
