"""kill -9 of one shard's anchor at random instants under load through the load balancer (issue
17 item 8): the loopback cluster of loadtest/cluster.py (K shard anchors, two ingest, two verify,
haproxy in front), the clients on haproxy's URL only, each killed anchor restarted like a pod.

With K > 1 shards writes go on through the others: a write may be answered 503 with Retry-After
(≤ 2 s) only within ``WINDOW_S`` of a kill, and nothing else than 200 at any time; the killed
shard takes entries again after its restart; the checker over every shard (shard_checker) finds
0 lost, 0 duplicate indices per shard and every aggregate record holding. With one shard (today's
split roles) the only anchor's restart bounds the 503s (ingest says Retry-After 5 s meanwhile),
so only the rest is held.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Sequence

import aiohttp

from services.published.shards import http_prefix, shard_origin
from storage.base import ObjectStore

from ..cluster import Cluster
from ..driver import Context, Outcome, drive
from ..shard_checker import ShardsVerdict, check_shards, keys_by_origin
from ..workload import Record
from . import Scenario

WINDOW_S = 2.0  # SPEC §10: at most a burst of 503 while a shard's failure is detected
RETRY_AFTER_MAX_S = 2.0


def refusals(
    writes: Sequence[tuple[float, str]], kills: Sequence[float], window_s: float | None
) -> list[str]:
    """What the clients' write answers break: a 503 more than ``window_s`` after the latest kill
    before it (or before any kill); ``window_s`` None: no bound. Answers other than 200 and 503
    are the driver's to report."""
    late = [
        (at, status)
        for at, status in writes
        if status == "503"
        and window_s is not None
        and not any(k <= at <= k + window_s for k in kills)
    ]
    if not late:
        return []
    first = late[0][0] - max((k for k in kills if k <= late[0][0]), default=late[0][0])
    return [f"{len(late)} writes answered 503 more than {window_s:g} s after a kill (the first "
            f"{first:.1f} s after it)"]


def unrecovered(record: Record, restarted: dict[str, int]) -> list[str]:
    """Shards (by origin) that acknowledged no entry after their anchor's last restart (the
    position in ``record.acked`` at that moment)."""
    return [
        f"shard {origin} acknowledged nothing after its anchor restarted"
        for origin, at in sorted(restarted.items())
        if not any(a.origin == origin for a in record.acked[at:])
    ]


def _scenario(name: str, shards: int, doc: str, short: int, long: int) -> Scenario:
    async def run(ctx: Context) -> Outcome:
        from loadtest.cluster import ORIGIN, running_cluster  # a SeaweedFS and haproxy behind it

        rng = random.Random(ctx.seed)
        kills: list[float] = []
        restarted: dict[str, int] = {}
        seen: list[Record] = []

        async def fault(pods: Cluster, record: Record) -> int:
            seen.append(record)
            count = long if ctx.long else short
            for _ in range(count):
                await asyncio.sleep(rng.uniform(0.5, 2.5))  # serving under load for a while
                ordinal = rng.randrange(shards)
                pod = pods.of("anchor")[ordinal]  # anchor n claimed shard n (a new deployment)
                kills.append(time.monotonic())
                pod.kill9()
                pod.start()
                await asyncio.to_thread(pod.wait_ready)
                restarted[shard_origin(ORIGIN, ordinal)] = len(record.acked)
            return count

        with running_cluster(ctx.workdir, ctx.bucket, shards=shards) as cluster:
            async with aiohttp.ClientSession() as session, session.get(cluster.url + "/v1/keys") as r:
                keys = keys_by_origin(await r.json())  # before any fault

            async def audit(store: ObjectStore, record: Record) -> ShardsVerdict:
                return await check_shards(
                    store, base=ORIGIN, keys=keys, acked=record.acked, checkpoints=record.checkpoints
                )

            paths = tuple(http_prefix(i) + "checkpoint" for i in range(shards))
            outcome = await drive(
                name, cluster.pods, fault, settle_s=4.0, front=cluster.url, checkpoints=paths, audit=audit
            )
        if seen:
            record = seen[0]
            outcome.problems += refusals(record.writes, kills, WINDOW_S if shards > 1 else None)
            outcome.problems += unrecovered(record, restarted)
            if shards > 1 and record.retry_after_max > RETRY_AFTER_MAX_S:
                outcome.problems.append(f"a write was told Retry-After {record.retry_after_max:g} s")
            outcome.extra["refused_writes"] = sum(1 for _, status in record.writes if status != "200")
        outcome.extra |= {"shards": shards, "kills": len(kills)}
        return outcome

    return Scenario(name, doc, True, run)


SCENARIOS = [
    _scenario(
        "kill9-shard-anchor",
        1,
        "kill -9 a shard's anchor under load through haproxy, restart it (one shard: today's roles)",
        3,
        50,
    ),
    *(
        _scenario(
            f"kill9-shard-anchor-{k}",
            k,
            f"kill -9 one of {k} shard anchors under load through haproxy, restart it: writes go on "
            "(needs SHARDS in split roles and ingest's failover, issue 17 items 1-2)",
            3,
            50,
        )
        for k in (2, 4)
    ),
]
