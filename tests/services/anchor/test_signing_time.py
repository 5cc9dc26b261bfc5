"""Cosigned checkpoint times never go back, whatever the wall clock does (services/anchor/signing_time)."""

from __future__ import annotations

from merkle import Digest, parse_digest
from merkle.checkpoint import open_checkpoint
from merkle.cosignature import CosignatureSigner
from merkle.note import Signer
from services.anchor import state
from services.anchor.keys import LogKeys
from services.anchor.sequencer import Sequencer, SequencerConfig
from services.anchor.signing_time import SigningTime, note_time
from storage.memory import MemoryIndex, MemoryStore
from tests.services.anchor.conftest import ORIGIN, tenant_index

HOUR = 3600
T0 = 1_800_000_000


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def items(start: int, n: int) -> list[Digest]:
    return [
        parse_digest("blake3:" + i.to_bytes(32, "big").hex()) for i in range(start, start + n)
    ]


def cosigned(note: str, keys: LogKeys) -> tuple[int, int]:
    opened = open_checkpoint(
        note, origin=ORIGIN, log_verifiers=[keys.log.verifier()], clock_verifiers=[keys.clock.verifier()]
    )
    assert opened.ok and opened.cosigned_time is not None
    return opened.checkpoint.size, opened.cosigned_time


def sequencer(store: MemoryStore, index: MemoryIndex, keys: LogKeys, clock: Clock) -> Sequencer:
    return Sequencer(
        store=store,
        index=index,
        keys=keys,
        config=SequencerConfig(origin=ORIGIN, batch_ms=5),
        tenant_index=tenant_index(),
        clock=clock,
    )


async def test_a_clock_stepped_back_keeps_the_last_signed_time(keys: LogKeys) -> None:
    clock = Clock(T0)
    seq = sequencer(MemoryStore(), MemoryIndex(), keys, clock)
    await seq.start()
    times = []
    for n, now in enumerate([T0, T0 + HOUR, T0 - HOUR, T0 + 10, T0 + HOUR + 5]):
        clock.now = now
        times.append(cosigned((await seq.submit("acme", items(n * 10, 10)))[0].checkpoint, keys))
        if now == T0 - HOUR:
            assert seq.clock_behind_s == 2 * HOUR
    await seq.close()
    assert [t for _, t in times] == [T0, T0 + HOUR, T0 + HOUR, T0 + HOUR, T0 + HOUR + 5]
    assert seq.clock_behind_s == 0


async def test_a_restart_behind_the_clock_resumes_from_the_recorded_time(keys: LogKeys) -> None:
    """kill -9 right after an acknowledgement (nothing published yet), restart with the clock
    two hours behind: the recovery checkpoint and the next ones keep the time handed out."""
    store, index, clock = MemoryStore(), MemoryIndex(), Clock(T0 + HOUR)
    first = sequencer(store, index, keys, clock)
    await first.start()
    store.faults.inject("put_if_absent", "log/tile/*", times=10**9)  # publication stalls
    acked = cosigned((await first.submit("acme", items(0, 50)))[0].checkpoint, keys)
    for t in first._tasks:  # "kill -9": abandon it
        t.cancel()
    first._tasks = []
    store.faults.clear()
    clock.now = T0 - HOUR
    second = sequencer(store, index, keys, clock)
    await second.start()
    recovered = cosigned((await store.get("log/checkpoint")).decode(), keys)
    later = cosigned((await second.submit("acme", items(50, 5)))[0].checkpoint, keys)
    await second.close()
    assert acked == (50, T0 + HOUR)
    assert recovered == (50, T0 + HOUR) and later == (55, T0 + HOUR)
    assert int.from_bytes(await index.get(state.SIGNED_TIME) or b"", "big") == T0 + HOUR


async def test_a_checkpoint_in_the_store_moves_the_time_only_if_this_clock_key_signed_it(
    keys: LogKeys,
) -> None:
    other = LogKeys(Signer.generate(ORIGIN), CosignatureSigner.generate(ORIGIN + "/clock"))
    store, index, clock = MemoryStore(), MemoryIndex(), Clock(T0)
    seq = sequencer(store, index, keys, clock)
    await seq.start()
    await seq.submit("acme", items(0, 3))
    await seq.close()
    note = await store.get("log/checkpoint")
    assert note_time(note, keys.clock.verifier()) == T0
    assert note_time(note, other.clock.verifier()) == 0  # not its signature
    assert note_time(b"not a note", keys.clock.verifier()) == 0


def test_signing_time_follows_the_clock_forward() -> None:
    clock = Clock(T0)
    st = SigningTime(clock, floor=T0 - 10)
    assert st.next() == T0 and st.behind_s == 0
    st.commit(T0 + 50)
    assert st.next() == T0 + 50 and st.behind_s == 50
    clock.now = T0 + 60
    assert st.next() == T0 + 60 and st.behind_s == 0
