"""The data directory's disk fills up: the embedded `notar serve` (role all, fs store: its
DATA_DIR holds the keys, RocksDB and the object store) runs on a small ext4 of its own; under
load a filler file takes every free block, stays a few seconds, then is deleted.

What it holds the service to, beside the checker's "nothing lost": writes are answered 200 or
503 problem+json with Retry-After (never a 500, never a client timeout) while the disk is full;
/readyz says not ready while entries are refused; after the space is freed entries are
acknowledged again and the server is ready, without a restart. The scenario also acts as the
supervisor (as Kubernetes would): a server that exits is started again, and counted as a problem.
The long form also kills the server (-9) while the disk is full and starts it again after the
space is freed ("kill"), or at once, while it is still full ("restart-full": it cannot start
then, and exits with a message, until the supervisor's next try after the space is freed).
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

import aiohttp

from ..cluster import Cluster, Pod, make_cluster, running
from ..driver import Context, Fault, Outcome, drive
from ..probes import pushback_problems
from ..probes import ready as _ready
from ..smalldisk import cannot_mount, fill, free_bytes, small_disk
from ..workload import Record
from . import Scenario

SIZE_MB = 48
HOLD_S = 5.0
RECOVER_S = 60.0
POLL_S = 0.25


class Supervisor:
    """Starts the pod again whenever it has exited, as Kubernetes would; counts the exits."""

    def __init__(self, pod: Pod) -> None:
        self.pod = pod
        self.exits: list[int | None] = []

    def check(self) -> None:
        if self.pod.alive():
            return
        self.exits.append(self.pod.process.returncode if self.pod.process else None)
        self.pod.start()


def filler(rng: random.Random, fills: list[str], figures: list[dict[str, Any]], sup: Supervisor) -> Fault:
    """One fill per entry of ``fills``: "hold" (full for HOLD_S, then freed), "kill" (full,
    kill -9 of the server, freed after HOLD_S, server started again) or "restart-full" (full,
    kill -9, started again at once and whenever it exits, freed after HOLD_S)."""

    async def fault(cluster: Cluster, record: Record) -> int:
        pod = cluster.anchor
        async with aiohttp.ClientSession() as s:
            for kind in fills:
                await asyncio.sleep(rng.uniform(1.0, 2.0))
                acked, refused, exits = len(record.acked), record.statuses["503"], len(sup.exits)
                f: dict[str, Any] = {"kind": kind, "free_before_bytes": free_bytes(pod.data)}
                f["filled_bytes"] = await asyncio.to_thread(fill, pod.data / "filler")
                full_at = time.monotonic()
                if kind != "hold":
                    pod.kill9()
                if kind == "restart-full":
                    pod.start()
                unready = 0
                while time.monotonic() - full_at < HOLD_S:
                    if kind != "kill":
                        sup.check()
                        unready += not await _ready(s, pod.url)
                    await asyncio.sleep(POLL_S)
                f["acked_while_full"] = len(record.acked) - acked
                f["503_while_full"] = record.statuses["503"] - refused
                f["unready_polls_while_full"] = unready
                (pod.data / "filler").unlink()
                freed_at, acked_at_free = time.monotonic(), len(record.acked)
                if kind == "kill":
                    pod.start()
                f["first_ack_after_s"] = f["ready_after_s"] = None
                while time.monotonic() - freed_at < RECOVER_S:
                    sup.check()
                    now = round(time.monotonic() - freed_at, 2)
                    if f["first_ack_after_s"] is None and len(record.acked) > acked_at_free:
                        f["first_ack_after_s"] = now
                    if f["ready_after_s"] is None and await _ready(s, pod.url):
                        f["ready_after_s"] = now
                    if f["first_ack_after_s"] is not None and f["ready_after_s"] is not None:
                        break
                    await asyncio.sleep(POLL_S)
                f["exits"] = len(sup.exits) - exits
                figures.append(f)
        return len(fills)

    return fault


def _problems(outcome: Outcome, figures: list[dict[str, Any]], sup: Supervisor) -> list[str]:
    found = []
    load = outcome.load
    found += pushback_problems(load)
    for k, f in enumerate(figures):
        if f["exits"] and f["kind"] != "restart-full":
            found.append(f"fill {k}: the server exited by itself {f['exits']} times (codes {sup.exits})")
        if f["kind"] == "hold" and f["503_while_full"] and not f["unready_polls_while_full"]:
            found.append(f"fill {k}: entries were refused but /readyz always said ready")
        for what in ("first_ack_after_s", "ready_after_s"):
            if f[what] is None:
                found.append(f"fill {k}: no recovery ({what}) within {RECOVER_S:g} s of freeing the space")
    return found


async def run(ctx: Context) -> Outcome:
    reason = cannot_mount()
    if reason is not None:
        raise RuntimeError(f"disk-full needs a loopback filesystem: {reason}")
    rng = random.Random(ctx.seed)
    fills = ["hold", "kill", "restart-full"] * 2 if ctx.long else ["hold"]
    figures: list[dict[str, Any]] = []
    cluster = make_cluster(ctx.workdir / "cluster")
    sup = Supervisor(cluster.anchor)
    with small_disk(ctx.workdir / "disk.img", cluster.anchor.data, size_mb=SIZE_MB), running(cluster):
        outcome = await drive("disk-full", cluster, filler(rng, fills, figures, sup), timeout_s=20.0)
    outcome.extra["fills"] = figures
    outcome.extra["disk_mb"] = SIZE_MB
    outcome.problems += _problems(outcome, figures, sup)
    return outcome


SCENARIOS = [
    Scenario(
        "disk-full",
        "the embedded server's data dir (small ext4) filled up under load, then freed",
        False,
        run,
    )
]
