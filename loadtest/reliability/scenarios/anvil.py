"""The EVM chain under the anchor misbehaving while the log is under load: anvil stopped and
started again (its chain kept in a state file), and reorgs shallower than EVM_CONFIRMATIONS.

The embedded `notar serve` (ANCHORS=local,evm) runs them: a chain fault reaches only the committer,
which runs in the anchor process in both shapes, and receipts are upgraded by the same
``AnchorStore`` in the embedded server as in a verify pod; one process instead of five plus
SeaweedFS leaves the 2-core box to the load and to anvil. anvil mines a block every 0.25 s and the
anchor waits for 4 confirmations, so a record can be written about a second after its transaction.

Beyond the checker's verdict (every EVM record checked on chain after the run), each scenario
checks every EVM record on chain the moment it appears in the store (``RecordWatch``: a record
written before its block was final would fail there), and what the brief expects of the fault.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import orjson

from merkle.checkpoint import parse_checkpoint
from merkle.note import parse_note
from services.published import layout

from ..chains import (
    ANCHORED,
    CONSECUTIVE,
    FAILURES,
    EvmChain,
    Findings,
    RecordWatch,
    anchor_kinds,
    evm_chain,
    kind_metric,
    metrics,
    published_size,
    readyz,
    server_errors,
    until,
)
from ..cluster import Cluster, make_cluster, running
from ..driver import Context, Fault, Outcome, drive
from ..workload import Record
from . import Scenario

CONFIRMATIONS = 4
BLOCK_TIME = 0.25


def _outage(
    chain: EvmChain, rng: random.Random, outages: int, down_s: tuple[float, float], f: Findings
) -> Fault:
    async def fault(cluster: Cluster, record: Record) -> int:
        url, verify, key = cluster.anchor.url, cluster.verify_urls[0], cluster.api_keys["acme"]
        watch = RecordWatch(cluster, chain)
        stop = asyncio.Event()
        watching = asyncio.create_task(watch.run(stop))
        done = 0
        try:
            for n in range(outages):
                size = await published_size(url)
                if not await until(partial(_evm_reached, url, size), 90):
                    f.problems.append(f"outage {n}: the evm anchor never reached size {size} before it")
                    break
                await asyncio.sleep(rng.uniform(0.0, 1.0))  # idle, or with a transaction in flight
                acked = len(record.acked)
                await asyncio.to_thread(chain.anvil.stop)  # SIGTERM: anvil dumps its chain
                done += 1
                shown = await _failing_shown(url, "evm", rng.uniform(*down_s))
                during = record.acked[acked:]
                f.add("acknowledged_while_down", len(during))
                f.add("failing_shown", shown)
                if not during:
                    f.problems.append(f"outage {n}: nothing was acknowledged while anvil was down")
                if not shown:
                    f.problems.append(f"outage {n}: /metrics and /readyz never showed the evm anchor failing")
                down_size = await published_size(url)
                await asyncio.to_thread(chain.anvil.start)  # loads the chain it dumped
                if not await until(partial(_evm_reached, url, down_size), 120):
                    f.problems.append(
                        f"outage {n}: the evm anchor did not resume (size {down_size} never anchored)"
                    )
                    break
                f.add("resumed")
                if during:
                    digest = rng.choice(during).digest
                    if await until(partial(_served_with, verify, key, digest, "evm"), 30):
                        f.add("receipts_upgraded_with_evm")
                    else:
                        kinds = sorted(await anchor_kinds(verify, key, digest))
                        f.problems.append(
                            f"outage {n}: the receipt of {digest}, acknowledged while anvil was down, "
                            f"was not upgraded with an evm anchor after recovery (anchors: {kinds})"
                        )
        finally:
            stop.set()
            await watching
        _watched(watch, f)
        return done

    return fault


def _reorg(
    chain: EvmChain, rng: random.Random, reorgs: int, between_s: tuple[float, float], f: Findings
) -> Fault:
    async def fault(cluster: Cluster, record: Record) -> int:
        journal = cluster.anchor.data / "anchors" / "evm-journal.json"
        watch = RecordWatch(cluster, chain)
        stop = asyncio.Event()
        watching = asyncio.create_task(watch.run(stop))
        orphaned: list[tuple[int, str]] = []  # (tree size, block hash) of our transactions reorged out
        try:
            for n in range(reorgs):
                await asyncio.sleep(rng.uniform(*between_s))
                # the first two, and about half of the others, drop the anchor's own transaction
                t = await _unfinal_anchor(chain, journal) if n < 2 or rng.random() < 0.5 else None
                head = await chain.head()
                if t is not None and head - t.block + 1 <= CONFIRMATIONS - 1:
                    await chain.anvil.rpc(
                        "anvil_reorg", rng.randint(head - t.block + 1, CONFIRMATIONS - 1), []
                    )
                    f.add("reorgs_at_an_anchor_transaction")
                    now = await chain.anvil.rpc("eth_getTransactionReceipt", t.tx_hash)
                    # still in its block when a block came between the head read and the reorg
                    if now is None or str(now["blockHash"]).lower() != t.block_hash:
                        orphaned.append((t.size, t.block_hash))
                elif rng.random() < 0.5:
                    await chain.anvil.rpc("anvil_reorg", rng.randint(1, CONFIRMATIONS - 1), [])
                    f.add("reorgs_anvil_reorg")
                else:  # evm_revert to a snapshot 1 or 2 blocks back (one block of slack for a race)
                    snapshot, at = await chain.anvil.rpc("evm_snapshot"), await chain.head()
                    depth = rng.randint(1, CONFIRMATIONS - 2)
                    await until(partial(_head_reached, chain, at + depth), 10, poll_s=0.02)
                    watch.saw_head(await chain.head() + 1)  # + a block that may come meanwhile
                    await chain.anvil.rpc("evm_revert", snapshot)
                    f.add("reorgs_evm_revert")
            if not orphaned:
                f.problems.append("no reorg dropped an anchor transaction: re-submission was not exercised")
            for size, block in orphaned:
                key = layout.anchor_record_key(size, "evm")
                if not await until(partial(_true, watch.seen, key), 60):
                    f.problems.append(f"size {size}: its reorged-out transaction never got a record")
                elif watch.seen[key]["block_hash"] == block:
                    f.problems.append(f"size {size}: its record names the block that was reorged out")
                else:
                    f.add("resubmitted_after_reorg")
        finally:
            stop.set()
            await watching
        f.add("evm_failures", int(kind_metric(await metrics(cluster.anchor.url), FAILURES, "evm")))
        _watched(watch, f)
        return reorgs

    return fault


@dataclass(frozen=True)
class InFlight:
    """The anchor's transaction in flight (from its journal), mined but not yet final."""

    size: int
    tx_hash: str
    block: int
    block_hash: str


async def _unfinal_anchor(chain: EvmChain, journal: Path) -> InFlight | None:
    """The anchor's transaction in flight once it is mined and not yet final; None when there
    is none within 5 s."""
    found: InFlight | None = None

    async def mined() -> bool:
        nonlocal found
        try:
            pending = orjson.loads(await asyncio.to_thread(journal.read_bytes))
        except (OSError, ValueError):
            return False
        head = await chain.head()
        for sent in pending.get("sent", []):
            r = await chain.anvil.rpc("eth_getTransactionReceipt", sent["hash"])
            if r and head - int(r["blockNumber"], 16) + 1 < CONFIRMATIONS:
                size = parse_checkpoint(parse_note(pending["context"]["note"]).text).size
                found = InFlight(size, sent["hash"], int(r["blockNumber"], 16), str(r["blockHash"]).lower())
                return True
        return False

    await until(mined, 5, poll_s=0.05)
    return found


async def _failing_shown(url: str, kind: str, seconds: float) -> bool:
    """Sleep ``seconds``, meanwhile watching /metrics and /readyz for ``kind`` failing."""
    shown = False

    async def look() -> bool:
        nonlocal shown
        failing = kind_metric(await metrics(url), CONSECUTIVE, kind) > 0
        shown = shown or (failing and f"anchor {kind}: failing" in await readyz(url))
        return False

    await until(look, seconds, poll_s=0.25)
    return shown


def _watched(watch: RecordWatch, f: Findings) -> None:
    f.add("evm_records_checked_when_written", watch.checked)
    f.problems += watch.failed


async def _evm_reached(url: str, size: int) -> bool:
    return int(kind_metric(await metrics(url), ANCHORED, "evm")) >= size


async def _served_with(verify: str, api_key: str, digest: str, kind: str) -> bool:
    return kind in await anchor_kinds(verify, api_key, digest)


async def _head_reached(chain: EvmChain, height: int) -> bool:
    return await chain.head() >= height


async def _true(seen: dict[str, Any], key: str) -> bool:
    return key in seen


def _scenario(
    name: str, doc: str, make_fault: Callable[[EvmChain, random.Random, bool, Findings], Fault]
) -> Scenario:
    async def run(ctx: Context) -> Outcome:
        rng = random.Random(ctx.seed)
        f = Findings()
        with evm_chain(ctx.workdir, confirmations=CONFIRMATIONS, block_time=BLOCK_TIME) as chain:
            env = {"NOTAR_ANCHORS": "local,evm", "NOTAR_ANCHOR_INTERVAL_S": "1", **chain.env()}
            cluster = make_cluster(ctx.workdir, env=env)
            with running(cluster):
                fault = make_fault(chain, rng, ctx.long, f)
                outcome = await drive(name, cluster, fault, settle_s=3.0, rate=50, evm=chain.check)
        outcome.extra.update(f.counts)
        outcome.problems += f.problems + server_errors(outcome.load)
        return outcome

    return Scenario(name, doc, False, run)


def _outage_fault(chain: EvmChain, rng: random.Random, long: bool, f: Findings) -> Fault:
    return _outage(chain, rng, 10 if long else 2, (5.0, 15.0) if long else (3.0, 4.0), f)


def _reorg_fault(chain: EvmChain, rng: random.Random, long: bool, f: Findings) -> Fault:
    # the long form leaves more time between reorgs, for more records to be made among them
    return _reorg(chain, rng, 60 if long else 6, (0.5, 2.5) if long else (0.2, 1.0), f)


SCENARIOS = [
    _scenario(
        "anvil-outage",
        "anvil stopped and restarted from its state under load (ANCHORS=local,evm)",
        _outage_fault,
    ),
    _scenario(
        "anvil-reorg",
        f"reorgs shallower than EVM_CONFIRMATIONS={CONFIRMATIONS} under load (ANCHORS=local,evm)",
        _reorg_fault,
    ),
]
