"""kill -9 of one process at random instants under load, restarted each time like a pod:
the anchor (the one sequencer), an ingest, a verify, and the embedded all-in-one server."""

from __future__ import annotations

import asyncio
import random

from ..cluster import Cluster, make_cluster, running
from ..driver import Context, Fault, Outcome, drive
from ..workload import Record
from . import Scenario


def killer(role: str, kills: int, rng: random.Random, *, up_s: tuple[float, float]) -> Fault:
    async def fault(cluster: Cluster, record: Record) -> int:
        for _ in range(kills):
            pod = rng.choice([p for p in cluster.pods if p.role == role])
            await asyncio.sleep(rng.uniform(*up_s))  # serving under load for a while
            pod.kill9()
            pod.start()
            await asyncio.to_thread(pod.wait_ready)
        return kills

    return fault


def _scenario(name: str, role: str, doc: str, short: int, long: int, up_s: tuple[float, float]) -> Scenario:
    async def run(ctx: Context) -> Outcome:
        rng = random.Random(ctx.seed)
        cluster = make_cluster(ctx.workdir, bucket=ctx.bucket if role != "all" else None)
        with running(cluster):
            fault = killer(role, long if ctx.long else short, rng, up_s=up_s)
            return await drive(name, cluster, fault)

    return Scenario(name, doc, role != "all", run)


SCENARIOS = [
    _scenario(
        "kill9-anchor", "anchor", "kill -9 the anchor (sequencer) under load, restart it", 20, 200, (0.1, 1.5)
    ),
    _scenario(
        "kill9-ingest", "ingest", "kill -9 one of two ingest pods under load, restart it", 5, 50, (0.2, 2.0)
    ),
    _scenario(
        "kill9-verify", "verify", "kill -9 one of two verify pods under load, restart it", 5, 50, (0.2, 2.0)
    ),
    _scenario(
        "kill9-embedded",
        "all",
        "kill -9 the embedded `notar serve` (fs store), restart it",
        20,
        200,
        (0.1, 1.5),
    ),
]
