"""The object store goes away: SeaweedFS stopped for 10 s (SIGKILL or SIGTERM of its process
group) and started again on the same ports and data, while the Kubernetes topology (anchor +
2 ingest + 2 verify, STORE=s3) is under load.

The scenario runs its own SeaweedFS (never the shared session one: other tests use it). What it
holds the service to, beside the checker's "nothing lost": no answer other than 200 or a 503
problem+json with Retry-After, no client timeout; every pod reports not ready while S3 is down
and ready again after; publication catches up with everything acknowledged; and no pod needed a
restart. ``extra["outages"]`` has the figures of each outage.
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

import aiohttp

from merkle.checkpoint import parse_checkpoint
from merkle.note import parse_note

from ..cluster import Cluster, S3Bucket, make_cluster, running
from ..driver import Context, Fault, Outcome, drive
from ..probes import pushback_problems
from ..probes import ready as _ready
from ..workload import Record
from . import Scenario

BUCKET = "notar-outage"
DOWN_S = 10.0
RECOVER_S = 60.0  # the bound on each wait after S3 is back (readiness, acknowledgement, catch-up)
POLL_S = 0.25


async def _published_size(s: aiohttp.ClientSession, url: str) -> int:
    try:
        async with s.get(url + "/log/checkpoint", timeout=aiohttp.ClientTimeout(total=3)) as r:
            if r.status != 200:
                return -1
            return parse_checkpoint(parse_note(await r.text()).text).size
    except (aiohttp.ClientError, TimeoutError, OSError, ValueError):
        return -1


async def _until(check: Any, bound: float) -> float | None:
    """Seconds until the coroutine function ``check()`` is true; None past ``bound``."""
    started = time.monotonic()
    while time.monotonic() - started < bound:
        if await check():
            return round(time.monotonic() - started, 2)
        await asyncio.sleep(POLL_S)
    return None


async def _recovery(s: aiohttp.ClientSession, cluster: Cluster, record: Record) -> dict[str, Any]:
    """Seconds from now (the store back) until an entry is acknowledged again, every pod is
    ready, and the verify pods publish every entry acknowledged so far; None past RECOVER_S."""
    acked_at_back = len(record.acked)
    last = max((a.index for a in record.acked), default=-1)

    async def acked_again() -> bool:
        return len(record.acked) > acked_at_back

    async def all_ready() -> bool:
        return all(await asyncio.gather(*(_ready(s, p.url) for p in cluster.pods)))

    async def caught_up() -> bool:
        sizes = await asyncio.gather(*(_published_size(s, u) for u in cluster.verify_urls))
        return min(sizes) > last

    waits = await asyncio.gather(
        _until(acked_again, RECOVER_S), _until(all_ready, RECOVER_S), _until(caught_up, RECOVER_S)
    )
    return {
        "first_ack_after_s": waits[0],
        "all_ready_after_s": waits[1],
        "published_caught_up_after_s": waits[2],
        "published_needed": last + 1,
    }


def outages(weed: Any, kinds: list[str], rng: random.Random, figures: list[dict[str, Any]]) -> Fault:
    """One outage of DOWN_S per kind, after a random while of normal service: "SIGKILL" or
    "SIGTERM" (stopped, then started again on the same ports and data) or "SIGSTOP" (frozen:
    connections hang rather than fail, then SIGCONT). Each one's figures go to ``figures``."""

    async def fault(cluster: Cluster, record: Record) -> int:
        pods = {f"{p.role} {p.url}": p.url for p in cluster.pods}
        async with aiohttp.ClientSession() as s:
            for kind in kinds:
                await asyncio.sleep(rng.uniform(1.0, 3.0))
                acked, refused, timeouts = len(record.acked), record.statuses["503"], record.timeouts
                if kind == "SIGSTOP":
                    weed.freeze()
                else:
                    weed.stop(kill=kind == "SIGKILL")
                down_at = time.monotonic()
                unready: set[str] = set()
                while time.monotonic() - down_at < DOWN_S:
                    states = await asyncio.gather(*(_ready(s, u) for u in pods.values()))
                    unready |= {name for name, ok in zip(pods, states, strict=True) if not ok}
                    await asyncio.sleep(POLL_S)
                f: dict[str, Any] = {
                    "signal": kind,
                    "acked_while_down": len(record.acked) - acked,
                    "503_while_down": record.statuses["503"] - refused,
                    "pods_never_unready": sorted(set(pods) - unready),
                }
                if kind == "SIGSTOP":
                    weed.thaw()
                    f["s3_restart_s"] = 0.0
                else:
                    f["s3_restart_s"] = round(await asyncio.to_thread(weed.start, bucket=BUCKET), 2)
                f |= await _recovery(s, cluster, record)
                f["timeouts"] = record.timeouts - timeouts
                figures.append(f)
        return len(kinds)

    return fault


def _problems(cluster: Cluster, outcome: Outcome, figures: list[dict[str, Any]]) -> list[str]:
    """What the outage scenario holds the service to beyond the checker."""
    found = []
    load = outcome.load
    found += pushback_problems(load)
    restarted = [f"{p.role} {p.url} ({p.starts} starts)" for p in cluster.pods if p.starts != 1]
    if restarted:
        found.append(f"pods were restarted: {restarted}")
    for k, f in enumerate(figures):
        if f["pods_never_unready"]:
            found.append(f"outage {k}: /readyz never said not ready on {f['pods_never_unready']}")
        for what in ("first_ack_after_s", "all_ready_after_s", "published_caught_up_after_s"):
            if f[what] is None:
                found.append(f"outage {k}: no recovery ({what}) within {RECOVER_S:g} s of S3 coming back")
    return found


async def run(ctx: Context) -> Outcome:
    from tests.seaweed_restartable import restartable_seaweed

    rng = random.Random(ctx.seed)
    kinds = ["SIGKILL", "SIGTERM", "SIGSTOP"] * 2 if ctx.long else ["SIGKILL"]
    figures: list[dict[str, Any]] = []
    (ctx.workdir / "weed").mkdir(parents=True)
    with restartable_seaweed(BUCKET, run_dir=ctx.workdir / "weed") as weed:
        t = weed.target(BUCKET)
        bucket = S3Bucket(t.endpoint, t.bucket, t.access_key, t.secret_key, t.region)
        cluster = make_cluster(ctx.workdir / "cluster", bucket=bucket)
        with running(cluster):
            outcome = await drive(
                "s3-outage", cluster, outages(weed, kinds, rng, figures), settle_s=3.0, timeout_s=20.0
            )
        outcome.extra["outages"] = figures
        outcome.extra["weed_starts"] = weed.starts
        outcome.problems += _problems(cluster, outcome, figures)
    return outcome


SCENARIOS = [
    Scenario(
        "s3-outage",
        "SeaweedFS stopped 10 s and restarted (same ports, data) under load on the topology",
        False,  # it runs its own SeaweedFS, which it stops
        run,
    )
]
