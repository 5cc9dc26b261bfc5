"""One chaos run: load through a running cluster, one kind of fault injected meanwhile, a period
of recovery under the same load, a graceful stop, then the "nothing lost" checker.

A scenario gives the cluster and a fault: a coroutine that injects its faults while the load
runs and returns how many it injected. ``drive`` returns an ``Outcome``; ``Outcome.ok`` is the
verdict the tests assert and RELIABILITY.md records.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from services.sdk import trusted_keys
from storage.base import ObjectStore

from .checker import EvmCheck, check
from .cluster import Cluster
from .workload import Record, Workload

# Injects faults into a running cluster while the load runs; returns how many it injected.
Fault = Callable[[Cluster, Record], Awaitable[int]]


class Audited(Protocol):
    """What an audit found (checker.Verdict, shard_checker.ShardsVerdict)."""

    @property
    def ok(self) -> bool: ...

    def summary(self) -> dict[str, Any]: ...


# Holds the deployment's store, after the run, to what the clients were given.
Audit = Callable[[ObjectStore, Record], Awaitable[Audited]]


@dataclass(frozen=True)
class Context:
    """What a scenario gets from the runner: a scratch directory, an S3 bucket when the scenario
    needs one (None: the embedded fs store only), the run's length and its random seed."""

    workdir: Path
    bucket: Any  # cluster.S3Bucket | None; Any keeps scenario modules free of the import
    long: bool
    seed: int


@dataclass
class Outcome:
    scenario: str
    faults: int
    seconds: float
    load: dict[str, Any]
    verdict: dict[str, Any]
    recovered: bool
    exit_codes: dict[str, int | None]
    problems: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> str:
        return json.dumps({**self.__dict__, "ok": self.ok}, sort_keys=True)


def published_keys(url: str) -> list[str]:
    """[log key, clock key] of the one log /v1/keys publishes (fetched before any fault)."""
    with urllib.request.urlopen(url + "/v1/keys", timeout=10) as r:
        keys = trusted_keys(json.loads(r.read()))
    return keys[:2]


async def drive(
    name: str,
    cluster: Cluster,
    fault: Fault,
    *,
    settle_s: float = 3.0,
    warmup_s: float = 1.0,
    writers: int = 8,
    batch: int = 20,
    readers: int = 2,
    rate: float | None = None,
    tsa_cas: Iterable[Any] = (),
    evm: EvmCheck | None = None,
    expect_clean_exit: bool = True,
    timeout_s: float = 30.0,
    front: str | None = None,
    checkpoints: tuple[str, ...] = ("/log/checkpoint",),
    audit: Audit | None = None,
) -> Outcome:
    """Load → fault (returns its count) → ``settle_s`` of load after it → stop → check.
    ``timeout_s``: how long a client waits for an answer (``load["timeouts"]`` counts them).
    ``front``: the load balancer's URL, which the clients then use instead of the pods';
    ``checkpoints``: the paths of the checkpoints the clients poll (each shard's); ``audit``:
    the checker (default: ``checker.check`` of the one log, under the keys published now)."""
    if audit is None:
        keys = published_keys(cluster.verify_urls[0])

        async def audit(store: ObjectStore, record: Record) -> Audited:
            return await check(
                store,
                origin=cluster.origin,
                keys=keys,
                acked=record.acked,
                checkpoints=record.checkpoints,
                tsa_cas=tsa_cas,
                evm=evm,
            )

    workload = Workload(
        [front] if front else cluster.ingest_urls,
        [front] if front else cluster.verify_urls,
        cluster.api_keys["acme"],
        writers=writers,
        batch=batch,
        readers=readers,
        rate=rate,
        timeout_s=timeout_s,
        checkpoints=checkpoints,
    )
    stop = asyncio.Event()
    started = time.monotonic()
    load = asyncio.create_task(workload.run(stop))
    problems: list[str] = []
    try:
        await asyncio.sleep(warmup_s)
        faults = await fault(cluster, workload.record)
        after_fault = len(workload.record.acked)
        await asyncio.sleep(settle_s)
        recovered = len(workload.record.acked) > after_fault
    finally:
        stop.set()
        record = await load
    seconds = time.monotonic() - started
    codes = cluster.stop()
    if not recovered:
        problems.append(f"no entry was acknowledged in the {settle_s:g} s after the last fault")
    if expect_clean_exit and any(c != 0 for c in codes.values()):
        problems.append(f"not every process stopped cleanly on SIGTERM: {codes}")
    if record.mismatches:
        problems.append(
            f"a verify pod contradicted {len(record.mismatches)} receipts: {record.mismatches[:3]}"
        )
    if not record.acked:
        problems.append("the load never got an entry acknowledged")
    # A sound request gets its receipt or a 503 to retry later; anything else (a 500, or a 401
    # because the tenant's key could not be looked up) is the service failing its client.
    errors = {k: n for k, n in record.statuses.items() if k.isdigit() and k not in ("200", "503")}
    errors |= {k: n for k, n in record.reads.items() if k.startswith("http-")}
    if errors:
        problems.append(f"clients got answers other than 200 or 503 pushback: {errors}")
    store = await cluster.open_store()
    try:
        verdict = await audit(store, record)
    finally:
        await store.close()
    if not verdict.ok:
        problems.append(f"the checker found: {verdict.summary()}")
    return Outcome(
        name, faults, round(seconds, 1), record.summary(), verdict.summary(), recovered, codes, problems
    )
