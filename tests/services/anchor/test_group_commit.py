"""Group commit and overlapped batches (services/anchor/intake.py, sequencer.py): a lone entry waits
for no timer; batch N+1 is prepared while batch N is written, made again when N's write fails,
and counted with N's entries under REPEATS_MAX; every signed size's partial tiles are published
when publication takes several batches at once."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import pytest

from merkle import Digest
from merkle.tiles import tiles_for_size
from services.anchor.batch import Preparer
from services.anchor.integration import Tree
from services.anchor.keys import LogKeys
from services.anchor.sequencer import INLINE_MAX
from services.anchor.signing_time import SigningTime
from services.model import SequencedGroup
from services.published import layout
from storage.errors import RepeatsCapped, StorageError
from storage.memory import MemoryIndex, MemoryStore
from tests.services.anchor.conftest import MakeSequencer
from tests.services.anchor.test_sequencer import check_log, digests


class GatedIndex(MemoryIndex):
    """A MemoryIndex whose next compare-and-swap (the sequencer's durable batch write) waits for
    `gate` once `arm` is called, then fails with StorageError, not applied, when `fail` says so."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.entered = asyncio.Event()
        self.armed = False
        self.fail = False
        self.reads = 0  # multi-gets: the repeats cap reading its counts

    def arm(self, *, fail: bool) -> None:
        self.gate.clear()
        self.entered.clear()
        self.armed, self.fail = True, fail

    async def multi_get(self, keys: Sequence[bytes]) -> list[bytes | None]:
        self.reads += 1
        return await super().multi_get(keys)

    async def compare_and_swap(
        self,
        key: bytes,
        expected: bytes | None,
        new: bytes,
        *,
        puts: Mapping[bytes, bytes] | None = None,
        deletes: Iterable[bytes] = (),
        sync: bool = True,
    ) -> bool:
        if self.armed:
            self.armed = False
            self.entered.set()
            await self.gate.wait()
            if self.fail:
                raise StorageError("the disk is full (a test's)")
        return await super().compare_and_swap(key, expected, new, puts=puts, deletes=deletes, sync=sync)


async def until(condition: object, what: str) -> None:
    for _ in range(500):
        if callable(condition) and condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never happened: {what}")


def counting(calls: list[int]) -> object:
    def urandom(n: int) -> bytes:
        calls.append(n)
        return os.urandom(n)

    return urandom


async def test_a_lone_entry_waits_for_no_timer(make_sequencer: MakeSequencer) -> None:
    """BATCH_MS is an upper bound: with 5 s of it, lone entries one after the other are each
    acknowledged in a batch of their own long before (a bound of half of it, generous)."""
    seq = await make_sequencer(batch_ms=5000)
    for i in range(3):
        [result] = await asyncio.wait_for(seq.submit("acme", digests(i, 1)), timeout=2.5)
        assert result.index == i and result.tree_size == i + 1
    assert seq.stats.batches == 3


async def test_a_small_batch_is_made_on_the_event_loop_and_a_large_one_in_a_thread(
    make_sequencer: MakeSequencer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch of up to INLINE_MAX entries is prepared and integrated on the event loop (its hop
    to a thread costs more than its work); a larger one off it, leaving the loop free. Both give
    the same log."""
    threads: list[tuple[str, int, bool]] = []
    loop_thread = threading.get_ident()

    def recording(name: str, work: Callable[..., Any], size: Callable[..., int]) -> Callable[..., Any]:
        def wrapped(*args: Any) -> Any:
            threads.append((name, size(*args), threading.get_ident() == loop_thread))
            return work(*args)

        return wrapped

    prepare, integrate = Preparer.prepare_all, Tree.integrate
    monkeypatch.setattr(
        Preparer, "prepare_all", recording("prepare", prepare, lambda _, g, *a: sum(x.size for x in g))
    )
    monkeypatch.setattr(Tree, "integrate", recording("integrate", integrate, lambda _, b, g: len(b.placed)))
    seq = await make_sequencer(batch_ms=5000)
    small = await seq.submit("acme", digests(0, INLINE_MAX))
    large = await seq.submit("acme", digests(INLINE_MAX, INLINE_MAX + 1))
    assert threads == [
        ("prepare", INLINE_MAX, True),
        ("integrate", INLINE_MAX, True),
        ("prepare", INLINE_MAX + 1, False),
        ("integrate", INLINE_MAX + 1, False),
    ]
    assert sorted(r.index for r in [*small, *large]) == list(range(2 * INLINE_MAX + 1))
    assert {r.tree_size for r in large} == {2 * INLINE_MAX + 1}


async def test_batch_min_ms_holds_a_batch_for_more_entries(make_sequencer: MakeSequencer) -> None:
    """BATCH_MIN_MS asks for a wait after a batch's first entry: two requests a moment apart
    share one batch."""
    seq = await make_sequencer(batch_ms=5000, batch_min_ms=300)
    first = asyncio.create_task(seq.submit("acme", digests(0, 1)))
    await asyncio.sleep(0.05)
    second = await seq.submit("acme", digests(1, 1))
    assert (await first)[0].tree_size == second[0].tree_size == 2
    assert seq.stats.batches == 1


async def test_entries_arriving_during_a_write_go_into_the_next_batch(make_sequencer: MakeSequencer) -> None:
    """Under load batches grow: what arrives while a batch is written is one batch after it."""
    index = GatedIndex()
    seq = await make_sequencer(index=index, batch_ms=5000)
    index.arm(fail=False)
    first = asyncio.create_task(seq.submit("acme", digests(0, 1)))
    await index.entered.wait()
    later = [asyncio.create_task(seq.submit("acme", digests(1 + i, 1))) for i in range(20)]
    await until(lambda: seq.queued == 0, "the next batch taken")
    index.gate.set()
    sizes = {r[0].tree_size for r in await asyncio.gather(first, *later)}
    assert sizes == {1, 21} and seq.stats.batches == 2


async def test_a_failed_write_under_the_next_batch_loses_nothing(
    make_sequencer: MakeSequencer, keys: LogKeys
) -> None:
    """Batch B is prepared while batch A's write hangs, then fails (retryable): A's callers get
    the error, B is made again at A's indices (a second CSPRNG draw) and written; the log stays
    contiguous and every acknowledged entry is where its receipt says."""
    store, index = MemoryStore(), GatedIndex()
    seq = await make_sequencer(store, index, start=False, batch_ms=5000)
    calls: list[int] = []
    seq._preparer._urandom = counting(calls)  # type: ignore[assignment]
    await seq.start()
    index.arm(fail=True)
    a = asyncio.create_task(seq.submit("acme", digests(0, 30)))
    await index.entered.wait()
    b = asyncio.create_task(seq.submit("globex", digests(100, 20)))
    await until(lambda: len(calls) == 2, "batch B prepared while A is written")
    index.gate.set()
    with pytest.raises(StorageError, match="retry"):
        await a
    got = await b
    assert len(calls) == 3, "B made again after A's write failed"
    assert sorted(r.index for r in got) == list(range(20)) and {r.tree_size for r in got} == {20}
    after = await seq.submit("acme", digests(200, 5))
    assert sorted(r.index for r in after) == list(range(20, 25))
    acked: dict[int, bytes] = {r.index: r.entry for r in [*got, *after]}
    await seq.close()
    await check_log(store, keys, acked, [got[0].checkpoint, after[0].checkpoint])


async def test_the_repeats_cap_counts_the_batch_being_written(make_sequencer: MakeSequencer) -> None:
    """REPEATS_MAX 3: batch A notarizes d twice; B, prepared while A is written (its count not in
    RocksDB yet), may add one more and no more."""
    index = GatedIndex()
    seq = await make_sequencer(index=index, repeats_max=3, batch_ms=5000)
    d: Digest = digests(7, 1)[0]

    async def overlapped(first: list[Digest], then: list[list[Digest]]) -> list[object]:
        index.arm(fail=False)
        a = asyncio.create_task(seq.submit("acme", first))
        await index.entered.wait()
        reads = index.reads
        rest = [asyncio.create_task(seq.submit("acme", ds)) for ds in then]
        await until(lambda: index.reads > reads, "the next batch admitted while A is written")
        index.gate.set()
        return await asyncio.gather(a, *rest, return_exceptions=True)

    results = await overlapped([d, d], [[d]])
    assert all(isinstance(r, SequencedGroup) for r in results), results
    results = await overlapped([digests(8, 1)[0]], [[d]])
    assert isinstance(results[1], RepeatsCapped), "the fourth notarization of d"
    rows = [k async for k, _ in index.scan(seq._rows.prefix("acme", d.multihash))]
    assert len(rows) == 3


async def test_the_cap_refuses_over_a_batch_in_flight(make_sequencer: MakeSequencer) -> None:
    """REPEATS_MAX 2: A (d twice) is being written when B (d once more) is admitted: B is refused,
    though RocksDB does not hold A's count yet."""
    index = GatedIndex()
    seq = await make_sequencer(index=index, repeats_max=2, batch_ms=5000)
    d = digests(3, 1)[0]
    index.arm(fail=False)
    a = asyncio.create_task(seq.submit("acme", [d, d]))
    await index.entered.wait()
    reads = index.reads
    b = asyncio.create_task(seq.submit("acme", [d]))
    await until(lambda: index.reads > reads, "batch B admitted while A is written")
    index.gate.set()
    assert len(await a) == 2
    with pytest.raises(RepeatsCapped):
        await b
    rows = [k async for k, _ in index.scan(seq._rows.prefix("acme", d.multihash))]
    assert len(rows) == 2


class HeldStore(MemoryStore):
    """A MemoryStore whose checkpoint writes wait while `held` is clear: publication falls
    behind, and its jobs pile up to be taken together."""

    def __init__(self) -> None:
        super().__init__()
        self.held = asyncio.Event()
        self.held.set()
        self.checkpoints = 0

    async def put_if_version(
        self, key: str, data: bytes, version: str | None, *, cache_control: str | None = None
    ) -> str:
        if key == layout.checkpoint_key():
            await self.held.wait()
            self.checkpoints += 1
        return await super().put_if_version(key, data, version, cache_control=cache_control)


async def test_publication_of_several_batches_writes_every_signed_sizes_partial_tiles(
    make_sequencer: MakeSequencer, keys: LogKeys
) -> None:
    """C2SP tlog-tiles: for every tree size a checkpoint was signed for, its partial tiles (and
    bundle) exist, also when publication takes several batches in one round."""
    store = HeldStore()
    seq = await make_sequencer(store, batch_ms=5000)
    store.held.clear()
    results: list[SequencedGroup] = []
    at = 0
    for n in (3, 300, 5, 70_000 - 308, 9):
        results.append(await seq.submit("acme", digests(at, n)))
        at += n
    done = store.checkpoints
    store.held.set()
    await until(lambda: seq.stats.published_size == at, "everything published")
    assert store.checkpoints - done < len(results), "publication took several batches at once"
    signed = [r[0].tree_size for r in results]
    for size in signed:
        partial = [t for t in tiles_for_size(size, entries=True) if t.partial]
        assert partial, size
        for tile in partial:
            assert layout.tile_key(tile) in store.objects, f"partial tile {tile.path} of size {size}"


def test_a_batch_prepared_under_another_never_gets_an_earlier_time() -> None:
    """Batch N+1 draws its time while batch N, with its own, is still being written (not yet
    committed): a clock stepped back meanwhile must not give N+1 an earlier time than N's."""
    now = [1_800_000_010.0]
    times = SigningTime(lambda: now[0])
    first = times.next()
    now[0] -= 10
    assert times.next() == first
    now[0] += 20
    assert times.next() == first + 10
