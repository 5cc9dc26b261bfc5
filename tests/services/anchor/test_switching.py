"""The switch interval follows the sequencers' publication backlogs (services.anchor.switching):
short while any is behind, the process's own again once none is; and a real sequencer whose
tiles cannot be published shortens it, then gives it back once publication caught up."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Iterator

import pytest

from services.anchor import state
from services.anchor.keys import LogKeys
from services.anchor.sequencer import Sequencer
from services.anchor.switching import INTERVAL, SHORT_S, Backlog, SwitchInterval
from storage.errors import NotarError
from storage.memory import Faults, MemoryIndex, MemoryStore
from tests.services.anchor.conftest import MakeSequencer
from tests.services.anchor.test_sequencer import check_log, digests

BOUND_S = 10.0


class Recorded:
    """A fake interpreter's switch interval: what it is, and every value set."""

    def __init__(self, value: float) -> None:
        self.value = value
        self.sets: list[float] = []

    def get(self) -> float:
        return self.value

    def set_to(self, value: float) -> None:
        self.value = value
        self.sets.append(value)


def test_short_while_any_owner_is_behind_then_the_process_s_own_again() -> None:
    fake = Recorded(0.005)
    interval = SwitchInterval(0.001, get=fake.get, set_to=fake.set_to)
    a, b = object(), object()
    interval.behind(a, False)
    assert fake.sets == [] and not interval.shortened
    interval.behind(a, True)
    assert fake.value == 0.001 and interval.shortened
    interval.behind(b, True)
    interval.behind(a, True)  # said again: nothing more to do
    interval.behind(a, False)
    assert fake.value == 0.001  # b is still behind
    interval.behind(b, False)
    assert fake.value == 0.005 and not interval.shortened
    assert fake.sets == [0.001, 0.005]  # set once each way, not per report


def test_an_interval_already_shorter_is_kept_and_restored_as_it_was() -> None:
    fake = Recorded(0.0002)  # someone chose less than SHORT_S: never lengthened by a backlog
    interval = SwitchInterval(0.001, get=fake.get, set_to=fake.set_to)
    interval.behind("seq", True)
    assert fake.value == 0.0002
    interval.behind("seq", False)
    assert fake.value == 0.0002


def test_a_backlog_counts_queued_and_in_flight_batches_from_an_eighth_of_its_size() -> None:
    fake = Recorded(0.005)
    interval = SwitchInterval(0.001, get=fake.get, set_to=fake.set_to)
    backlog = Backlog(64, interval)
    assert backlog.threshold == 8
    assert Backlog(3, interval).threshold == 1
    backlog.update(7)
    assert not interval.shortened
    backlog.update(0, 5)  # a round of 5 starts, the queue drained into it
    backlog.update(3)  # 3 more queued behind it
    assert interval.shortened
    backlog.update(3, 0)  # the round ended: 3 left
    assert not interval.shortened
    backlog.update(9)
    assert interval.shortened
    backlog.close()
    assert not interval.shortened and fake.value == 0.005


@pytest.fixture
def process_interval() -> Iterator[float]:
    """The test process's interval, put back whatever happens."""
    before = sys.getswitchinterval()
    try:
        yield before
    finally:
        sys.setswitchinterval(before)


async def _submit_until_shortened(seq: Sequencer, acked: dict[int, bytes]) -> int:
    """Submit batches of 5 (acknowledged into `acked`) until the interval is short; the next
    digest's number."""
    n, deadline = 0, time.monotonic() + BOUND_S
    while sys.getswitchinterval() != SHORT_S:
        assert time.monotonic() < deadline, "the interval was never shortened"
        done = await asyncio.wait_for(seq.submit("acme", digests(n, 5)), 2.0)
        acked.update({s.index: s.entry for s in done})
        n += 5
    return n


async def test_a_sequencer_whose_tiles_cannot_be_published_shortens_it_until_caught_up(
    make_sequencer: MakeSequencer, keys: LogKeys, process_interval: float
) -> None:
    assert process_interval > SHORT_S and not INTERVAL.shortened
    faults = Faults()
    store, index = MemoryStore(faults=faults), MemoryIndex()
    seq = await make_sequencer(store, index, lease_ttl_s=60, publish_backlog=32)  # behind from 4
    faults.inject("put_if_absent", "log/tile/*", times=10**9)  # tiles cannot be published
    acked: dict[int, bytes] = {}
    await _submit_until_shortened(seq, acked)
    deadline = time.monotonic() + BOUND_S
    assert INTERVAL.shortened and len(acked) >= 4 * 5  # four batches or more behind
    faults.clear()
    while sys.getswitchinterval() != process_interval or seq.stats.published_size != seq.size:
        assert time.monotonic() < deadline, "the interval was not given back once caught up"
        await asyncio.sleep(0.01)
    assert not INTERVAL.shortened
    await seq.close()
    await check_log(store, keys, acked, [])


async def test_a_sequencer_that_stops_behind_gives_the_interval_back(
    make_sequencer: MakeSequencer, process_interval: float
) -> None:
    """Publication held with batches queued behind the round in flight, then the sequencer
    stops (RocksDB's head changed under it): closing it gives the interval back, though the
    round it cancels left batches queued."""
    faults = Faults()
    index = MemoryIndex()
    seq = await make_sequencer(MemoryStore(faults=faults), index, lease_ttl_s=60, publish_backlog=32)
    faults.inject("put_if_absent", "log/tile/*", times=10**9)
    n = await _submit_until_shortened(seq, {})
    for _ in range(4):  # as many again: queued alone, they are a backlog without the round's
        await asyncio.wait_for(seq.submit("acme", digests(n, 5)), 2.0)
        n += 5
    await index.write_batch({state.HEAD: state.u64(10**6)})  # a second writer, as it were
    with pytest.raises(NotarError):
        await asyncio.wait_for(seq.submit("acme", digests(n, 5)), 2.0)
    assert seq.stopped is not None and INTERVAL.shortened  # stopped, its backlog still there
    await seq.close()
    assert sys.getswitchinterval() == process_interval and not INTERVAL.shortened
