"""Load through the public API while faults are injected, and a record of what was promised.

Writers POST fresh digests to the ingest pods (round-robin) and keep every receipt they were
given: an acknowledged receipt is a promise the "nothing lost" checker holds the service to.
A failed or refused request promises nothing; its digests are never sent again (a retry would
be a new entry, which is legitimate but would blur the count). Readers fetch receipts of
acknowledged digests back from the verify pods and log pollers record every checkpoint the
verify pods publish, so the checker can hold each one to the final log.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

from merkle.digests import make_entry, parse_digest


@dataclass(frozen=True)
class Acked:
    """One acknowledged receipt, as the client got it (the checkpoint note shared per batch)."""

    digest: str
    salt: str
    subject: str
    entry: str
    index: int
    tree_size: int
    inclusion: tuple[str, ...]
    checkpoint: str
    origin: str = ""  # the log (shard) the receipt names; "" from callers that have one log


@dataclass
class Record:
    """Everything the clients saw: promises, checkpoints, and how each request ended."""

    acked: list[Acked] = field(default_factory=list)
    checkpoints: set[str] = field(default_factory=set)
    statuses: Counter[str] = field(default_factory=Counter)  # "200", "503", "connection", ...
    reads: Counter[str] = field(default_factory=Counter)  # "ok", "missing", "mismatch", "failed"
    mismatches: list[str] = field(default_factory=list)  # a verify pod contradicted a receipt
    latencies: list[float] = field(default_factory=list)  # seconds, acknowledged requests only
    sent: int = 0  # digests sent in requests
    timeouts: int = 0  # writes the client gave up on after Workload.timeout_s (also "connection")
    bare_503: int = 0  # 503 answers to writes without Retry-After or not problem+json
    writes: list[tuple[float, str]] = field(default_factory=list)  # (time.monotonic() at the end, status)
    retry_after_max: float = 0.0  # the longest Retry-After any write was told

    def summary(self) -> dict[str, Any]:
        lat = sorted(self.latencies)
        return {
            "digests_sent": self.sent,
            "acknowledged": len(self.acked),
            "requests": dict(self.statuses),
            "reads": dict(self.reads),
            "checkpoints_seen": len(self.checkpoints),
            "timeouts": self.timeouts,
            "bare_503": self.bare_503,
            "p50_ms": round(lat[len(lat) // 2] * 1000, 1) if lat else None,
            "p99_ms": round(lat[int(len(lat) * 0.99)] * 1000, 1) if lat else None,
            "retry_after_max_s": self.retry_after_max,
        }


@dataclass
class Workload:
    """``writers`` closed-loop clients of ``batch`` digests each, optionally paced to ``rate``
    requests/s in all; ``readers`` receipt fetchers; pollers of each of ``checkpoints`` (the
    paths of every shard's checkpoint) on each verify URL."""

    ingest: list[str]
    verify: list[str]
    api_key: str
    writers: int = 8
    batch: int = 20
    readers: int = 2
    rate: float | None = None
    max_requests: int = 1_000_000  # a bound on the whole run, whatever the clock says
    retry_after_cap_s: float = 2.0
    timeout_s: float = 30.0
    checkpoints: tuple[str, ...] = ("/log/checkpoint",)
    record: Record = field(default_factory=Record)

    def __post_init__(self) -> None:
        self._run = os.urandom(8).hex()
        self._numbers = itertools.count()
        self._ingest = itertools.cycle(self.ingest)
        self._verify = itertools.cycle(self.verify or self.ingest)
        self._requests = 0
        self._next_at = time.monotonic()
        self._auth = {"Authorization": f"Bearer {self.api_key}"}
        self._notes: dict[str, str] = {}  # interned checkpoint notes

    def _digests(self) -> list[str]:
        return [f"sha256:{self._run}{next(self._numbers):048x}" for _ in range(self.batch)]

    async def _pace(self) -> None:
        if self.rate is None:
            return
        self._next_at = max(self._next_at + 1.0 / self.rate, time.monotonic() - 1.0)
        delay = self._next_at - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)

    async def _write_once(self, s: aiohttp.ClientSession) -> float:
        """One request; how long to wait before the next (Retry-After, or a pause after an error)."""
        digests = self._digests()
        self.record.sent += len(digests)
        started = time.monotonic()
        try:
            async with s.post(
                next(self._ingest) + "/v1/digests", json={"digests": digests}, headers=self._auth
            ) as r:
                body = await r.read()
                status = r.status
                retry = r.headers.get("Retry-After")
                problem = r.content_type == "application/problem+json"
        except (aiohttp.ClientError, TimeoutError, OSError) as e:
            self.record.statuses["connection"] += 1
            self.record.writes.append((time.monotonic(), "connection"))
            self.record.timeouts += isinstance(e, TimeoutError)
            return 0.05
        self.record.statuses[str(status)] += 1
        self.record.writes.append((time.monotonic(), str(status)))
        if status == 503 and not (retry and problem):
            self.record.bare_503 += 1
        if status != 200:
            wait = float(retry) if retry and retry.isdigit() else 0.05
            self.record.retry_after_max = max(self.record.retry_after_max, wait if retry else 0.0)
            return min(wait, self.retry_after_cap_s)
        self.record.latencies.append(time.monotonic() - started)
        for d, rc in zip(digests, orjson.loads(body)["receipts"], strict=True):
            note = self._notes.setdefault(rc["checkpoint"], rc["checkpoint"])
            self.record.checkpoints.add(note)
            log = rc["log"]
            self.record.acked.append(
                Acked(
                    d,
                    rc["salt"],
                    rc["subject"],
                    rc["entry"],
                    log["index"],
                    log["tree_size"],
                    tuple(log["inclusion"]),
                    note,
                    log["origin"],
                )
            )
        return 0.0

    async def _writer(self, s: aiohttp.ClientSession, stop: asyncio.Event) -> None:
        while not stop.is_set() and self._requests < self.max_requests:
            self._requests += 1
            await self._pace()
            wait = await self._write_once(s)
            if wait:
                await asyncio.sleep(wait)

    async def _reader(self, s: aiohttp.ClientSession, stop: asyncio.Event) -> None:
        rng = random.Random()
        while not stop.is_set():
            await asyncio.sleep(0.05)
            if not self.record.acked:
                continue
            want = rng.choice(self.record.acked)
            try:
                async with s.get(f"{next(self._verify)}/v1/receipts/{want.digest}", headers=self._auth) as r:
                    body = await r.read()
                    status = r.status
            except (aiohttp.ClientError, TimeoutError, OSError):
                self.record.reads["failed"] += 1
                continue
            if status in (404, 503):  # not yet published there, or the pod is busy / restarting
                self.record.reads["not-yet" if status == 404 else "503"] += 1
                continue
            if status != 200:
                self.record.reads[f"http-{status}"] += 1
                continue
            got = orjson.loads(body)
            log = got.get("log", {})
            if (
                got.get("entry") == want.entry
                and log.get("index") == want.index
                and log.get("origin") == want.origin
            ):
                self.record.reads["ok"] += 1
            elif earlier_notarization(got, want):
                self.record.reads["earlier"] += 1
            else:
                self.record.reads["mismatch"] += 1
                self.record.mismatches.append(f"{want.digest}: acked {want.index}, served {got.get('log')}")

    async def _poller(self, s: aiohttp.ClientSession, url: str, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await asyncio.sleep(0.5)
            for path in self.checkpoints:
                try:
                    async with s.get(url + path) as r:
                        if r.status == 200:
                            self.record.checkpoints.add(await r.text())
                except (aiohttp.ClientError, TimeoutError, OSError):
                    pass

    async def run(self, stop: asyncio.Event) -> Record:
        """Run until ``stop`` is set or ``max_requests`` were sent."""
        timeout = aiohttp.ClientTimeout(total=self.timeout_s)
        connector = aiohttp.TCPConnector(limit=max(100, self.writers + self.readers + 8))
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as s:
            tasks = [asyncio.create_task(self._writer(s, stop)) for _ in range(self.writers)]
            tasks += [asyncio.create_task(self._reader(s, stop)) for _ in range(self.readers)]
            tasks += [asyncio.create_task(self._poller(s, u, stop)) for u in set(self.verify)]
            await asyncio.gather(*tasks)
        return self.record


def earlier_notarization(got: dict[str, Any], want: Acked) -> bool:
    """Whether `got`, served for `want`'s digest instead of its receipt, is another notarization
    of that digest by the same tenant made before it: the same request sequenced twice, which an
    ingest pod's resend of a part whose shard did not answer (or a load balancer's retry) may do
    (never a loss: the look-up returns the earliest, SPEC §10). Its entry must commit to the
    digest, its salt and the subject, and it must come first in its log when it is the same log."""
    try:
        entry = make_entry(parse_digest(want.digest), bytes.fromhex(str(got["salt"])), str(got["subject"]))
        log = got["log"]
        same_log_later = log["origin"] == want.origin and int(log["index"]) >= want.index
    except (KeyError, TypeError, ValueError):
        return False
    return got.get("subject") == want.subject and got.get("entry") == entry.hex() and not same_log_later
