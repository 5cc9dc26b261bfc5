"""Measuring one contestant of the API benchmark: a load (loadtest/loadgen.py) bounded in
requests and seconds, the CPU the server processes spent on it, and what the run gathers besides:
documents that never share a chunk, the anchor's lag and queue, sampled receipts verified offline."""

from __future__ import annotations

import asyncio
import contextlib
import os
import struct
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from loadtest.loadgen import LoadResult, Op, closed_loop, open_loop
from loadtest.servers import ORIGIN, cpu_seconds
from merkle.checkpoint import parse_checkpoint
from merkle.note import parse_note
from merkle.receipt import Receipt
from merkle.verdict import verify_receipt
from services.sdk import trusted_keys

NOTAR, HELLO, RAW = "notar serve", "aiohttp hello world", "raw aiobotocore put_object"
COMPACT, DEFAULT = "notar serve, compact answers", "notar serve, default answers"
PLAIN = "plain RFC 9162 hashing loop (this process)"
OPEN_IN_FLIGHT = 1024  # single digests, open loop: connections and requests in flight at most


@dataclass
class Sizes:
    rounds: int
    seconds: float
    bulk_clients: int
    bulk_per_request: int
    single_connections: int
    doc_bytes: int
    doc_concurrency: int
    proof_connections: int


@dataclass
class Sample:
    result: LoadResult
    server_cores: float  # CPU seconds of the server(s) per second of the run
    client_cores: float
    extra: dict[str, float] = field(default_factory=dict)


@dataclass
class Contestant:
    metric: str
    name: str
    unit: str
    op: Callable[[int], Op]  # round → the operation of that round
    concurrency: int
    max_requests: int
    pids: Callable[[], list[int]]  # server processes whose CPU counts
    during: Callable[[], AsyncIterator[dict[str, float]]] | None = None
    rate: Callable[[], float] | None = None  # open loop at this many requests/s; else closed


async def measure(c: Contestant, rnd: int, seconds: float) -> Sample:
    pids = c.pids()
    before = [cpu_seconds(p) for p in pids]
    client_before = time.process_time()
    extra: dict[str, float] = {}
    sampler_task = None
    if c.during is not None:
        during = c.during

        async def sample() -> None:
            async for values in during():
                for k, v in values.items():
                    extra[k] = max(extra.get(k, v), v)  # the largest seen during the run

        sampler_task = asyncio.create_task(sample())
    started = time.perf_counter()
    try:
        if c.rate is None:
            result = await closed_loop(
                c.op(rnd), concurrency=c.concurrency, max_requests=c.max_requests, max_seconds=seconds
            )
        else:
            extra["offered"] = offered = c.rate()
            result = await open_loop(c.op(rnd), rate=offered, max_requests=c.max_requests,
                                     max_seconds=seconds, max_in_flight=c.concurrency)
    finally:
        if sampler_task is not None:
            sampler_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sampler_task
    wall = time.perf_counter() - started
    server = sum(cpu_seconds(p) - b for p, b in zip(pids, before, strict=True))
    return Sample(result, server / wall, (time.process_time() - client_before) / wall, extra)


def document_maker(size: int) -> Callable[[int, int], bytes]:
    """(round, k) → `size` bytes: one random buffer, stamped every MiB with a nonce, the round and
    k, so that no two documents share a chunk (notar deduplicates chunks within a tenant)."""
    base = os.urandom(size)
    nonce = os.urandom(8)

    def make(rnd: int, k: int) -> bytes:
        data = bytearray(base)
        stamp = nonce + struct.pack(">II", rnd & 0xFFFFFFFF, k)
        for at in range(0, size, 1 << 20):
            data[at : at + len(stamp)] = stamp
        return bytes(data)

    return make


async def metric_sampler(client: aiohttp.ClientSession, url: str) -> AsyncIterator[dict[str, float]]:
    """The anchor's publication lag and queue depth, every quarter second."""
    wanted = {"notar_publication_lag_entries": "lag", "notar_queue_depth": "queue"}
    while True:
        with contextlib.suppress(aiohttp.ClientError, ValueError):
            async with client.get(url + "/metrics") as r:
                values: dict[str, float] = {}
                for line in (await r.text()).splitlines():
                    name, _, value = line.partition(" ")
                    if name in wanted:
                        values[wanted[name]] = float(value)
                yield values
        await asyncio.sleep(0.25)


async def published_size(session: aiohttp.ClientSession, url: str) -> int:
    async with session.get(url + "/log/checkpoint") as r:
        return parse_checkpoint(parse_note(await r.text()).text, origin=ORIGIN).size


def verify_samples(samples: Sequence[tuple[str, Receipt]], keys: dict[str, Any]) -> int:
    """Verify sampled receipts offline under the server's keys document; SystemExit on the first
    that fails."""
    trusted = trusted_keys(keys)
    for digest, receipt in samples:
        result = verify_receipt(receipt, keys=trusted, digest=digest)
        if not result.valid:
            failed = [f"{c.name}: {c.detail}" for c in result.checks if not c.ok]
            raise SystemExit(f"a receipt from the run does not verify: {failed}")
    return len(samples)



@dataclass
class Table:
    samples: dict[tuple[str, str], list[Sample]] = field(default_factory=dict)
    ratios: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    checked: int = 0
    notes: list[str] = field(default_factory=list)

    def add(self, c: Contestant, s: Sample) -> None:
        self.samples.setdefault((c.metric, c.name), []).append(s)

