"""The anchor's witness client (services/anchor/witnesses.py) against a real `notar witness serve`
on loopback: the 409 resynchronisation from `text/x.tlog.size` with the consistency proof from
the witness's size, a fork reported (same size, another root), back-off with jitter after
failures, a request timeout, and a witness that never answers delaying neither another witness
nor the caller; the per-witness metrics and /readyz lines."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from merkle.cosignature import CosignatureSigner
from merkle.note import Signer, parse_note, verify_note
from services.anchor.chains import Target
from services.anchor.witnesses import WitnessClient, WitnessClientConfig, WitnessFork
from services.common.components import Witness
from services.published.witnessed import WitnessedStore
from storage.fs import FsStore
from tests.services.witness.harness import TestLog, WitnessProcess, keygen
from tests.serving import free_port


def make_log(origin: str, seed: int) -> TestLog:
    return TestLog(origin, Signer(origin, bytes([seed]) * 32))


# one log per test, so that each finds the witness at the size it expects
LOG = make_log("client.notar.test/resync", 7)
FORKED = make_log("client.notar.test/fork", 8)
FORK = TestLog(FORKED.origin, FORKED.signer, fork_at=10)  # the same key, other entries from index 10 on
MUTE = make_log("client.notar.test/mute", 9)


def unreachable(name: str, url: str) -> Witness:
    """A witness of WITNESSES at ``url``, with a key nobody holds (it never gets to sign)."""
    return Witness(CosignatureSigner.generate(name).verifier().to_key(), url)


async def parked(delay: float) -> None:
    """A loop's first sleep that never ends: the test calls ``run_once`` itself."""
    await asyncio.Event().wait()


class TreeProver:
    """Consistency proofs of a test log (what LogReader gives from the published tiles)."""

    def __init__(self, log: TestLog) -> None:
        self.log = log
        self.asked: list[tuple[int, int]] = []

    async def consistency_proof(self, size1: int, size2: int) -> list[bytes]:
        self.asked.append((size1, size2))
        return self.log.tree.consistency_proof(size1, size2)


@pytest.fixture(scope="module")
def witness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[WitnessProcess, str]]:
    tmp = tmp_path_factory.mktemp("witness")
    (tmp / "logs.txt").write_text("".join(log.vkey + "\n" for log in (LOG, FORKED, MUTE)))
    vkey = keygen(tmp / "w", "witness.client.test/w")
    process = WitnessProcess(tmp / "w", tmp / "logs.txt").start()
    try:
        yield process, vkey
    finally:
        process.stop()


def client(
    witnesses: list[Witness],
    log: TestLog,
    size: int,
    store: FsStore,
    *,
    interval_s: float = 10.0,
    timeout_s: float = 10.0,
    max_backoff_s: float = 300.0,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> tuple[WitnessClient, TreeProver]:
    """A client of ``witnesses`` with the checkpoint of ``log`` at ``size`` to witness."""
    prover = TreeProver(log)
    target = Target.from_note(log.note(size))

    async def to_witness() -> Target:
        return target

    c = WitnessClient(
        witnesses=witnesses,
        reader=prover,
        witnessed=WitnessedStore(store),
        target=to_witness,
        config=WitnessClientConfig(
            interval_s=interval_s, quorum=1, timeout_s=timeout_s, max_backoff_s=max_backoff_s
        ),
        sleep=sleep,
    )
    return c, prover


async def test_a_409_resynchronises_from_the_witness_size_with_the_proof_from_it(
    witness: tuple[WitnessProcess, str], tmp_path: Path
) -> None:
    process, vkey = witness
    assert process.post("/add-checkpoint", LOG.body(0, 8)).status == 200  # the witness holds size 8
    store = FsStore(tmp_path / "store")
    c, prover = client([Witness(vkey, process.url)], LOG, 20, store, sleep=parked)
    await c.start()
    try:
        assert await c.run_once(0)  # 409 "8": sent again with the proof from 8 to 20, cosigned
    finally:
        await c.close()
    st = c.status[0]
    assert prover.asked == [(8, 20)]
    assert (st.held_size, st.cosigned_size, st.cosignatures, st.forks) == (20, 20, 1, 0)
    note = await WitnessedStore(store).note(20)
    assert note is not None and verify_note(parse_note(note), [st.key]).verified
    assert f'notar_witness_cosigned_tree_size{{witness="{st.name}"}} 20' in c.metrics()
    assert "notar_witness_quorum_tree_size 20" in c.metrics()
    assert c.details()[0] == f"witness {st.name} ({process.url}): ok; cosigned tree size 20"
    assert not await c.run_once(0)  # nothing newer to witness: no request


async def test_another_root_for_the_size_the_witness_holds_is_reported_as_a_fork(
    witness: tuple[WitnessProcess, str], tmp_path: Path
) -> None:
    process, vkey = witness
    assert process.post("/add-checkpoint", FORKED.body(0, 20)).status == 200  # the witness holds 20
    store = FsStore(tmp_path / "store")
    # 409 "20" (it holds 20), sent again from 20 with no proof: 422, another root for that size
    c, _ = client([Witness(vkey, process.url)], FORK, 20, store, sleep=parked)
    await c.start()
    try:
        with pytest.raises(WitnessFork, match="holds another view of this log"):
            await c.run_once(0)
    finally:
        await c.close()
    assert c.status[0].forks == 1 and c.status[0].held_size == 20

    delays: list[float] = []
    retried = asyncio.Event()

    async def sleep(delay: float) -> None:
        delays.append(delay)
        if len(delays) > 1:  # the first attempt failed: its back-off recorded
            retried.set()
            await asyncio.Event().wait()

    c, _ = client([Witness(vkey, process.url)], FORK, 20, store, max_backoff_s=300.0, sleep=sleep)
    await c.start()
    try:
        await asyncio.wait_for(retried.wait(), 30)
    finally:
        await c.close()
    st = c.status[0]
    assert st.forks == 1 and st.cosigned_size == 0
    assert delays == [0.0, 300.0]  # a fork is retried at the longest back-off
    assert c.details()[0].startswith(f"witness {st.name} ({process.url}): FORK: witness {st.name}")
    assert f'notar_witness_forks_total{{witness="{st.name}"}} 1' in c.metrics()
    assert await WitnessedStore(store).note(20) is None  # nothing stored for the fork


async def test_failures_back_off_exponentially_with_jitter_up_to_the_cap(tmp_path: Path) -> None:
    closed = free_port()  # nothing listens there: each attempt fails at once
    delays: list[float] = []
    done = asyncio.Event()

    async def sleep(delay: float) -> None:
        delays.append(delay)
        if len(delays) == 9:
            done.set()
            await asyncio.Event().wait()

    c, _ = client(
        [unreachable("closed.client.test/w", f"http://127.0.0.1:{closed}")],
        LOG,
        4,
        FsStore(tmp_path / "store"),
        interval_s=1.0,
        max_backoff_s=8.0,
        sleep=sleep,  # no waiting between attempts in a test: the delays recorded
    )
    await c.start()
    try:
        await asyncio.wait_for(done.wait(), 30)
    finally:
        await c.close()
    assert delays[0] == 0.0  # the first attempt at once
    for n, delay in enumerate(delays[1:]):
        ceiling = min(8.0, 2.0**n)
        assert ceiling / 2 <= delay <= ceiling, (n, delays)
    assert len(set(delays[5:])) > 1  # jitter: witnesses retried together do not stay in step
    st = c.status[0]
    assert st.consecutive_failures == 8 and st.failures == 8 and st.last_error
    assert c.details()[0].startswith(f"witness {st.name} (http://127.0.0.1:{closed}): failing (8 in a row): ")
    assert f'notar_witness_consecutive_failures{{witness="{st.name}"}} 8' in c.metrics()
    assert "notar_witness_quorum_tree_size 0" in c.metrics()


async def test_a_witness_that_never_answers_times_out_and_delays_no_other(
    witness: tuple[WitnessProcess, str], tmp_path: Path
) -> None:
    process, vkey = witness
    silent = socket.socket()  # accepts connections (the kernel's backlog), never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    try:
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        mute = unreachable("mute.client.test/w", url)
        store = FsStore(tmp_path / "store")
        size = 16
        c, _ = client([mute, Witness(vkey, process.url)], MUTE, size, store, timeout_s=60.0)
        await c.start()  # the loops: each witness in its own task
        try:
            for _ in range(600):
                if c.status[1].cosigned_size == size:
                    break
                await asyncio.sleep(0.05)
            # the answering witness cosigned while the mute one's request is still outstanding
            assert c.status[1].cosigned_size == size
            assert c.status[0].consecutive_failures == 0 and c.status[0].cosigned_size == 0
            assert c.quorum_size == size
        finally:
            await c.close()
        short, _ = client([mute], MUTE, size, store, timeout_s=0.3, sleep=parked)
        await short.start()
        try:
            with pytest.raises(TimeoutError):
                await short.run_once(0)
        finally:
            await short.close()
    finally:
        silent.close()
