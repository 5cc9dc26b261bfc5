"""The committer over an in-memory store with scripted backends: what it anchors and when, where
records go, how the verify service finds them, and faults (never a crash, never a false record)."""

from __future__ import annotations

import asyncio
import hashlib

import orjson
import pytest

from merkle.checkpoint import Checkpoint, sign_checkpoint
from merkle.cosignature import CosignatureSigner
from merkle.note import Signer
from services.anchor.chains import Anchorable, Anchored, AnchorError
from services.anchor.chains.local import LocalChain
from services.anchor.committer import Committer
from services.common.components import CommitterConfig
from services.common.telemetry import Telemetry
from services.published.anchors import AnchorStore
from storage.errors import StorageError
from storage.memory import MemoryStore

ORIGIN = "committer.notar.test/log"
LOG = Signer.generate(ORIGIN)
CLOCK = CosignatureSigner.generate(ORIGIN + "/clock")


def note(size: int) -> str:
    cp = Checkpoint(ORIGIN, size, hashlib.sha256(str(size).encode()).digest())
    return sign_checkpoint(cp, LOG, CLOCK, 1_700_000_000 + size)


async def publish(store: MemoryStore, size: int) -> None:
    await store.put("log/checkpoint", note(size).encode())


class Scripted:
    """A backend whose next answers are scripted: a record (default) or an exception."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.calls: list[int] = []
        self.fail: list[BaseException] = []
        self.closed = False

    async def anchor(self, target: Anchorable) -> Anchored:
        self.calls.append(target.size)
        if self.fail:
            raise self.fail.pop(0)
        return Anchored(target, {"type": self.kind, "tree_size": target.size, "n": len(self.calls)})

    async def close(self) -> None:
        self.closed = True


async def test_each_kind_anchors_the_latest_checkpoint_once() -> None:
    store = MemoryStore()
    a, b = Scripted("local"), Scripted("evm")
    c = Committer(store=store, backends=[a, b], config=CommitterConfig())
    assert not await c.run_once("local"), "nothing published yet"
    await publish(store, 0)
    assert not await c.run_once("local"), "an empty tree is not anchored"
    await publish(store, 5)
    assert await c.run_once("local") and await c.run_once("evm")
    assert not await c.run_once("local"), "not newer than the last anchored"
    await publish(store, 8)
    assert await c.run_once("local")
    assert a.calls == [5, 8] and b.calls == [5]
    assert sorted(store.objects) == [
        "log/checkpoint",
        "private/log/anchors/checkpoint/00000000000000000005",
        "private/log/anchors/checkpoint/00000000000000000008",
        "private/log/anchors/record/00000000000000000005/evm.json",
        "private/log/anchors/record/00000000000000000005/local.json",
        "private/log/anchors/record/00000000000000000008/local.json",
    ]
    found = await c.anchors.anchors_for(5)
    assert found is not None and found.note == note(5)
    assert [r["type"] for r in found.records] == ["local", "evm"]


async def test_lookup_for_receipt_upgrades() -> None:
    store = MemoryStore()
    writer = AnchorStore(store)
    for size in (4, 10, 30):
        await writer.put(size, note(size), {"type": "local", "tree_size": size})
    now = [0.0]
    reader = AnchorStore(store, refresh_s=5, clock=lambda: now[0])  # a verify pod
    first = await reader.first_anchored(5)
    assert first is not None and (first.size, first.note) == (10, note(10))
    assert (await reader.first_anchored(1)).size == 4  # type: ignore[union-attr]
    assert (await reader.first_anchored(30)).size == 30  # type: ignore[union-attr]
    assert await reader.first_anchored(31) is None
    await writer.put(40, note(40), {"type": "local", "tree_size": 40})
    assert await reader.first_anchored(31) is None, "re-listed at most every refresh_s"
    now[0] = 6
    assert (await reader.first_anchored(31)).size == 40  # type: ignore[union-attr]
    assert await reader.anchors_for(11) is None
    await writer.put(10, note(10), {"type": "rfc3161", "token": "x"})  # a kind that came late
    late = await reader.anchors_for(10)
    assert late is not None and [r["type"] for r in late.records] == ["local", "rfc3161"]


async def test_restart_knows_what_each_kind_anchored() -> None:
    store = MemoryStore()
    await publish(store, 5)
    first = Committer(
        store=store, backends=[Scripted("local"), Scripted("rfc3161")], config=CommitterConfig()
    )
    await first.run_once("local")
    again = Committer(store=store, backends=[b := Scripted("local"), t := Scripted("rfc3161")],
                      config=CommitterConfig(interval_s=3600))
    await again.start()
    await asyncio.sleep(0.05)
    await again.close()
    assert again.status["local"].anchored_size == 5 and b.calls == []
    assert t.calls == [5], "the TSA had not anchored size 5: it does now"
    assert b.closed and t.closed


async def test_failures_back_off_show_and_never_store_a_record() -> None:
    store = MemoryStore()
    await publish(store, 7)
    bad = Scripted("rfc3161")
    bad.fail = [AnchorError("the TSA at http://tsa is unreachable"), AnchorError("garbage"),
                RuntimeError("a bug")]
    good = Scripted("local")
    backoffs: list[float] = []

    async def sleep(s: float) -> None:
        if s == 1:  # a round
            await asyncio.sleep(0.01)
        else:
            backoffs.append(s)
            await asyncio.sleep(0)

    tel = Telemetry()
    c = Committer(store=store, backends=[bad, good], config=CommitterConfig(interval_s=1, max_backoff_s=60),
                  sleep=sleep, meter=tel.meter)
    await c.start()
    async with asyncio.timeout(5):
        while c.status["rfc3161"].records == 0:
            await asyncio.sleep(0.01)
    st = c.status["rfc3161"]
    assert st.failures == 3 and st.records == 1 and st.consecutive_failures == 0
    assert bad.calls == [7, 7, 7, 7] and good.calls == [7]
    assert 0.5 <= backoffs[0] <= 1 and 1 <= backoffs[1] <= 2 and backoffs[2] == 60, backoffs
    stored = orjson.loads(store.objects["private/log/anchors/record/00000000000000000007/rfc3161.json"])
    assert stored["n"] == 4, "only the attempt that succeeded left a record"
    metrics = tel.prometheus()
    for line in (
        'notar_anchor_failures_total{kind="rfc3161"} 3',
        'notar_anchor_failures_total{kind="local"} 0',
        'notar_anchor_records_total{kind="rfc3161"} 1',
        'notar_anchor_tree_size{kind="local"} 7',
        'notar_anchor_consecutive_failures{kind="rfc3161"} 0',
        "# TYPE notar_anchor_records_total counter",
        "# TYPE notar_anchor_tree_size gauge",
    ):
        assert line in metrics, f"{line!r} not in {metrics}"
    await c.close()


async def test_a_busy_kind_joins_the_current_round() -> None:
    """EVM busy while the log grows: when it is free again it anchors the checkpoint the other
    kinds anchor in that round, so every size it anchors carries them too."""
    store = MemoryStore()
    local, evm = Scripted("local"), Scripted("evm")
    release = asyncio.Event()
    original = evm.anchor

    async def slow(target: Anchorable) -> Anchored:
        await release.wait()
        return await original(target)

    evm.anchor = slow  # type: ignore[method-assign]
    rounds = asyncio.Queue[None]()

    async def sleep(s: float) -> None:
        if s == 1:
            await rounds.get()  # the test drives the rounds
        else:
            await asyncio.sleep(0)

    c = Committer(store=store, backends=[local, evm], config=CommitterConfig(interval_s=1), sleep=sleep)
    await publish(store, 5)
    await c.start()

    async def settle() -> None:
        for _ in range(20):
            await asyncio.sleep(0)

    await settle()
    for size in (8, 9):
        await publish(store, size)
        rounds.put_nowait(None)
        await settle()
    release.set()
    await settle()
    assert local.calls == [5, 8, 9] and evm.calls == [5, 9]
    for size in await c.anchors.sizes():
        found = await c.anchors.anchors_for(size)
        assert found is not None
        kinds = [r["type"] for r in found.records]
        assert "local" in kinds, f"size {size} anchored to {kinds} only"
    await c.close()


async def test_failing_kind_is_visible_in_details() -> None:
    store = MemoryStore()
    await publish(store, 7)
    bad = Scripted("evm")
    bad.fail = [AnchorError("the EVM RPC at http://rpc failed on eth_chainId")]
    slept = asyncio.Event()

    async def sleep(s: float) -> None:
        slept.set()
        await asyncio.Event().wait()

    c = Committer(store=store, backends=[bad], config=CommitterConfig(), sleep=sleep)
    await c.start()
    await asyncio.wait_for(slept.wait(), 5)
    assert c.details() == [
        "anchor evm: failing (1 in a row): the EVM RPC at http://rpc failed on eth_chainId; "
        "anchored tree size 0"
    ]
    assert "private/log/anchors/checkpoint/00000000000000000007" not in store.objects
    await c.close()


async def test_store_fault_after_a_record_is_retried() -> None:
    store = MemoryStore()
    await publish(store, 3)
    local = LocalChain(store=store, signer=LOG)
    c = Committer(store=store, backends=[local], config=CommitterConfig())
    store.faults.inject("put_if_absent", key="private/log/anchors/record/*")
    with pytest.raises(StorageError):
        await c.run_once("local")
    assert await c.run_once("local"), "the same checkpoint again: the head block is reused"
    found = await c.anchors.anchors_for(3)
    assert found is not None and found.records[0]["height"] == 0



async def test_a_record_stored_before_a_failure_is_not_anchored_twice() -> None:
    store = MemoryStore()
    await publish(store, 4)
    evm = Scripted("evm")
    c = Committer(store=store, backends=[evm], config=CommitterConfig())
    store.faults.inject("put_if_absent", key="private/log/anchors/checkpoint/*")
    with pytest.raises(StorageError):
        await c.run_once("evm")
    assert "private/log/anchors/record/00000000000000000004/evm.json" in store.objects
    assert not await c.run_once("evm")
    assert evm.calls == [4], "no second transaction for a size already anchored"
    assert "private/log/anchors/checkpoint/00000000000000000004" in store.objects
    assert c.status["evm"].anchored_size == 4
    await AnchorStore(store).put(4, note(4), {"type": "evm", "late": True})  # a second record: dropped
    found = await AnchorStore(store).anchors_for(4)
    assert found is not None and found.records[0]["n"] == 1
