"""kill -9 of a witness under load: the embedded `notar serve` with two `notar witness serve` as
its WITNESSES (quorum 2), one of them killed at random instants and restarted with its state.

Besides the checker's "nothing lost": no witness signed two roots for one tree size (every
cosigned checkpoint seen, polled from the witnesses while the load runs and read from the
anchor's store, is of the one log), and once the last witness is back the quorum cosigns a
checkpoint at least as large as the log was then."""

from __future__ import annotations

import asyncio
import random
import subprocess
import sys
import time
import urllib.request

from ..cluster import Cluster, _free_ports, make_cluster, running
from ..driver import Context, Outcome, drive
from ..witnesses import Cosignatures, WitnessPod
from ..workload import Record
from . import Scenario

ORIGIN = "chaos.notar.test/log"
QUORUM_WAIT_S = 60.0


def _metric(url: str, name: str) -> float:
    with urllib.request.urlopen(url + "/metrics", timeout=10) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[-1])
    raise RuntimeError(f"{name} not in {url}/metrics")


async def _quorum_reaches(cluster: Cluster, size: float) -> bool:
    deadline = time.monotonic() + QUORUM_WAIT_S
    while time.monotonic() < deadline:
        if await asyncio.to_thread(_metric, cluster.anchor.url, "notar_witness_quorum_tree_size") >= size:
            return True
        await asyncio.sleep(0.5)
    return False


def _setup(ctx: Context) -> tuple[Cluster, list[WitnessPod]]:
    """The embedded cluster (not started) with its log keys made, and its two witnesses running."""
    logs_file = ctx.workdir / "witness-logs.txt"
    witnesses = [
        WitnessPod(f"witness.chaos.notar.test/w{i}", port, ctx.workdir / f"witness-{i}", logs_file)
        for i, port in zip((1, 2), _free_ports(2), strict=True)
    ]
    env = {
        "NOTAR_WITNESSES": ",".join(f"{w.keygen()}@{w.url}" for w in witnesses),
        "NOTAR_WITNESS_QUORUM": "2",
        "NOTAR_WITNESS_INTERVAL_S": "1",
    }
    cluster = make_cluster(ctx.workdir / "cluster", origin=ORIGIN, env=env)
    made = subprocess.run(  # the log's keys before it starts: the witnesses' logs file names its key
        [sys.executable, "-m", "services.cli", "keygen"], env=cluster.anchor.env, capture_output=True,
        text=True, timeout=60, check=True,
    )  # fmt: skip
    logs_file.write_text(made.stdout.splitlines()[-2].split()[-1] + "\n")
    try:
        for w in witnesses:
            w.start()
            w.wait_ready()
    except BaseException:
        for w in witnesses:
            w.terminate()
        raise
    return cluster, witnesses


async def run(ctx: Context) -> Outcome:
    rng = random.Random(ctx.seed)
    kills = 40 if ctx.long else 6
    cluster, witnesses = await asyncio.to_thread(_setup, ctx)
    seen = Cosignatures()
    problems: list[str] = []

    async def fault(cluster: Cluster, record: Record) -> int:
        polling = asyncio.Event()
        poller = asyncio.create_task(seen.poll(witnesses, ORIGIN, polling))
        try:
            for _ in range(kills):
                await asyncio.sleep(rng.uniform(0.5, 2.5))  # cosigning under load for a while
                w = rng.choice(witnesses)
                w.kill9()
                await asyncio.sleep(rng.uniform(0.0, 2.0))  # down: receipts must not wait for it
                w.start()
                await asyncio.to_thread(w.wait_ready)
            size = await asyncio.to_thread(_metric, cluster.anchor.url, "notar_tree_size")
            if not await _quorum_reaches(cluster, size):
                problems.append(f"the quorum did not cosign tree size {size:g} within {QUORUM_WAIT_S:g} s")
        finally:
            polling.set()
            await poller
        return kills

    try:
        with running(cluster):
            outcome = await drive("kill9-witness", cluster, fault)
        store = await cluster.open_store()
        try:
            await seen.read_store(store, witnesses, "log/")
        finally:
            await store.close()
    finally:
        codes = {f"witness {w.name}": w.terminate() for w in witnesses}
    outcome.problems += problems + seen.problems + seen.forks()
    if seen.seen == 0:
        outcome.problems.append("no cosigned checkpoint was seen")
    if any(c != 0 for c in codes.values()):
        outcome.problems.append(f"not every witness stopped cleanly on SIGTERM: {codes}")
    outcome.exit_codes |= codes
    outcome.extra["witnesses"] = {"cosigned checkpoints seen": seen.seen, "sizes": len(seen.roots)}
    return outcome


SCENARIOS = [
    Scenario(
        "kill9-witness",
        "kill -9 one of two witnesses (quorum 2) under load, restart it: no witness signs two roots",
        False,
        run,
    )
]
