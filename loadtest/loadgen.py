"""A reusable async load generator over the notar SDK (`services/sdk.py`), for loopback targets.

Every run is bounded twice, in requests and in seconds, whatever the mode:

- closed loop (`closed_loop`): `concurrency` workers each send a request, wait for its answer,
  and send the next; the offered load adapts to the server, so this measures capacity.
- open loop (`open_loop`): request k is due at `start + k / rate` whatever the answers; latency
  counts from that scheduled instant, so a server (or a generator) falling behind shows up in
  the latency instead of being hidden ("coordinated omission"). In-flight requests are capped:
  a request due while the cap is reached is counted as `dropped`, never queued without bound.

An operation is an async callable `op(k) -> units` (digests, bytes, proofs: whatever one request
carries); it raises to report a failure. Every request's latency is recorded.

    async with notar_client(url, api_key, connections=8) as client:
        op = notarize_op(client, per_request=10_000)
        result = await closed_loop(op, concurrency=4, max_requests=100, max_seconds=10)
        print(result.unit_rate, result.quantile(0.99))
"""

from __future__ import annotations

import asyncio
import ipaddress
import math
import os
import random
import socket
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import aiohttp
import orjson

from loadtest.bench_merkle_contestants import plain_root
from merkle.compact import expand
from merkle.receipt import Receipt
from services.sdk import ApiError, NotarClient, Receipts

Op = Callable[[int], Awaitable[int]]
"""One request: given its sequence number, do it and return the units it carried."""

MAX_ERROR_SAMPLES = 5


class NotLoopback(ValueError):
    """The target is not on this machine's loopback interface."""


def check_loopback(url: str) -> None:
    """Refuse any target whose host does not resolve only to loopback addresses."""
    parts = urlsplit(url)
    host = parts.hostname
    if parts.scheme not in ("http", "https") or not host:
        raise NotLoopback(f"not an http(s) URL: {url!r}")
    try:
        infos = socket.getaddrinfo(host, parts.port or 80, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise NotLoopback(f"cannot resolve {host!r}: {e}") from e
    addresses = {str(info[4][0]) for info in infos}
    outside = [a for a in addresses if not ipaddress.ip_address(a.split("%", 1)[0]).is_loopback]
    if not addresses or outside:
        raise NotLoopback(f"load is only generated against loopback; {host!r} is {sorted(addresses)}")


@asynccontextmanager
async def notar_client(
    url: str, api_key: str | None = None, *, connections: int = 64, timeout_s: float = 60.0
) -> AsyncIterator[NotarClient]:
    """A `NotarClient` on its own session, after checking that `url` is loopback. No retries:
    a 503 pushback is a failed request here, counted, never hidden by a sleep."""
    check_loopback(url)
    session = aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=timeout_s, sock_connect=10),
        connector=aiohttp.TCPConnector(limit=connections, limit_per_host=connections),
    )
    try:
        yield NotarClient(url, api_key, session=session, retries=0)
    finally:
        await session.close()


# ---------------------------------------------------------------------------------- results


@dataclass
class LoadResult:
    """What one bounded run did. `latencies` (seconds) are those of the successful requests."""

    mode: str
    elapsed: float = 0.0
    requests: int = 0
    units: int = 0
    errors: int = 0
    dropped: int = 0
    latencies: list[float] = field(default_factory=list)
    error_kinds: Counter[str] = field(default_factory=Counter)
    error_samples: list[str] = field(default_factory=list)
    stopped_by: str = ""

    @property
    def ok(self) -> int:
        return len(self.latencies)

    @property
    def rate(self) -> float:
        """Successful requests per second."""
        return self.ok / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def unit_rate(self) -> float:
        """Units (of successful requests) per second."""
        return self.units / self.elapsed if self.elapsed > 0 else 0.0

    def quantile(self, q: float) -> float:
        """The q-quantile of the successful requests' latencies (nearest rank), in seconds."""
        return quantile(self.latencies, q)

    def record_error(self, e: BaseException) -> None:
        self.errors += 1
        kind = f"{e.status} {e.kind}" if isinstance(e, ApiError) else type(e).__name__
        self.error_kinds[kind] += 1
        if len(self.error_samples) < MAX_ERROR_SAMPLES:
            self.error_samples.append(f"{kind}: {str(e)[:200]}")

    def summary(self) -> str:
        text = (
            f"{self.mode}: {self.ok} ok / {self.requests} sent in {self.elapsed:.2f}s, "
            f"{self.rate:,.0f} req/s, {self.unit_rate:,.0f} units/s, "
            f"p50 {self.quantile(0.5) * 1000:.1f} ms, p99 {self.quantile(0.99) * 1000:.1f} ms"
        )
        if self.errors or self.dropped:
            text += f", {self.errors} errors {dict(self.error_kinds)}, {self.dropped} dropped"
        return text


def quantile(values: Sequence[float], q: float) -> float:
    """Nearest-rank quantile; 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(q * len(ordered) + 0.5) - 1))]


def _check_bounds(max_requests: int, max_seconds: float) -> None:
    if not (isinstance(max_requests, int) and max_requests > 0):
        raise ValueError(f"max_requests must be a positive whole number, got {max_requests!r}")
    if not (max_seconds > 0 and max_seconds != float("inf")):
        raise ValueError(f"max_seconds must be positive and finite, got {max_seconds!r}")


# ------------------------------------------------------------------------------------ modes


async def closed_loop(
    op: Op, *, concurrency: int, max_requests: int, max_seconds: float, drain_seconds: float = 30.0
) -> LoadResult:
    """`concurrency` workers, each sending its next request when the previous one is answered,
    until `max_requests` were sent or `max_seconds` passed. Requests still unanswered
    `drain_seconds` after that are cancelled and counted as errors."""
    _check_bounds(max_requests, max_seconds)
    if concurrency <= 0:
        raise ValueError(f"concurrency must be positive, got {concurrency}")
    result = LoadResult(mode=f"closed x{concurrency}")
    start = time.perf_counter()
    deadline = start + max_seconds
    last_end = start

    async def worker() -> None:
        nonlocal last_end
        while result.requests < max_requests and time.perf_counter() < deadline:
            k = result.requests
            result.requests += 1
            answered = await _send(op, k, time.perf_counter(), result)
            last_end = max(last_end, answered)  # read after the await: other workers move it too

    tasks = [asyncio.create_task(worker()) for _ in range(min(concurrency, max_requests))]
    await _finish(tasks, deadline + drain_seconds, result)
    result.elapsed = max(last_end - start, 1e-9) if result.ok else time.perf_counter() - start
    result.stopped_by = "count" if result.requests >= max_requests else "time"
    return result


async def open_loop(
    op: Op,
    *,
    rate: float,
    max_requests: int,
    max_seconds: float,
    max_in_flight: int = 1024,
    drain_seconds: float = 30.0,
) -> LoadResult:
    """Request k is due at start + k / `rate` (requests/s), whatever the answers, until
    `max_requests` were due or `max_seconds` passed. Latency counts from the due instant. A
    request due while `max_in_flight` are outstanding is dropped (counted, not sent)."""
    _check_bounds(max_requests, max_seconds)
    if not rate > 0:
        raise ValueError(f"rate must be positive, got {rate!r}")
    result = LoadResult(mode=f"open {rate:,.0f}/s")
    start = time.perf_counter()
    deadline = start + max_seconds
    in_flight: set[asyncio.Task[None]] = set()
    last_end = start

    async def one(k: int, due: float) -> None:
        nonlocal last_end
        answered = await _send(op, k, due, result)
        last_end = max(last_end, answered)

    k = 0
    while k < max_requests:
        due = start + k / rate
        if due >= deadline:
            break
        now = time.perf_counter()
        if due > now:
            await asyncio.sleep(due - now)
        if len(in_flight) >= max_in_flight:
            result.dropped += 1
        else:
            result.requests += 1
            task = asyncio.create_task(one(k, due))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
        k += 1
    offered_end = time.perf_counter()
    await _finish(list(in_flight), offered_end + drain_seconds, result)
    # Throughput over the offered window, or until the last answer if that came later.
    result.elapsed = max(last_end, offered_end) - start
    result.stopped_by = "count" if k >= max_requests else "time"
    return result


async def _send(op: Op, k: int, since: float, result: LoadResult) -> float:
    """Request `k`, recorded in `result`: on success its latency from `since` and its units, else
    its error. The instant it was answered, or -inf when it failed."""
    try:
        units = await op(k)
    except asyncio.CancelledError:
        raise
    except Exception as e:
        result.record_error(e)
        return -math.inf
    answered = time.perf_counter()
    result.latencies.append(answered - since)
    result.units += units
    return answered


async def _finish(tasks: list[asyncio.Task[None]], hard_deadline: float, result: LoadResult) -> None:
    """Wait for `tasks` until `hard_deadline`; cancel the rest and count each as a timeout."""
    if not tasks:
        return
    _, pending = await asyncio.wait(tasks, timeout=max(0.0, hard_deadline - time.perf_counter()))
    for t in pending:
        t.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    for _ in pending:
        result.record_error(TimeoutError("unanswered at the run's time bound"))


# --------------------------------------------------------------------- operations on the SDK


def random_digests(count: int, *, algorithm: str = "blake3") -> list[str]:
    """`count` distinct-with-overwhelming-probability digests, cheaply (one urandom call)."""
    raw = os.urandom(32 * count).hex()
    return [f"{algorithm}:{raw[i : i + 64]}" for i in range(0, 64 * count, 64)]


@dataclass
class ReceiptSampler:
    """Keeps the first receipt of every `every`-th answer (at most `keep`) to verify offline
    after the run, with the digest it should prove."""

    every: int = 10
    keep: int = 50
    samples: list[tuple[str, Receipt]] = field(default_factory=list)

    def offer(self, k: int, digest: str, receipt: Receipt) -> None:
        if k % self.every == 0 and len(self.samples) < self.keep:
            self.samples.append((digest, receipt))


def notarize_op(
    client: NotarClient, *, per_request: int, sampler: ReceiptSampler | None = None, check: bool = True
) -> Op:
    """POST /v1/digests with `per_request` fresh digests; checks one receipt per digest, in
    order (`check=False` for a reference server answering constant bodies)."""

    async def op(k: int) -> int:
        digests = random_digests(per_request)
        receipts = await client.notarize(digests)
        if not check:
            return per_request
        if len(receipts) != per_request:
            raise AssertionError(f"{len(receipts)} receipts for {per_request} digests")
        if str(receipts[0].digest) != digests[0] or str(receipts[-1].digest) != digests[-1]:
            raise AssertionError("receipts are not in request order")
        if sampler is not None:
            sampler.offer(k, digests[0], receipts[0])
        return per_request

    return op


def bulk_op(
    client: NotarClient,
    *,
    per_request: int,
    compact: bool,
    sampler: ReceiptSampler | None = None,
    expand_every: int = 16,
) -> Op:
    """POST /v1/digests with `per_request` fresh digests, the answer compact or default, taken
    as bytes: the server's cost, not the client's, is what is measured. Every answer is checked
    cheaply (its entry count); every `expand_every`-th one is read in full (the compact one
    expanded by `merkle.compact.expand`, the default one parsed strictly) and its first receipt
    offered to `sampler`."""

    async def op(k: int) -> int:
        digests = random_digests(per_request)
        raw = await client.post_digests(digests, compact=compact)
        if compact:
            count = sum(len(p["indices"]) for p in orjson.loads(raw)["parts"])
        else:
            count = raw.count(b'{"format":"notar.receipt.v2"')
        if count != per_request:
            raise AssertionError(f"{count} entries answered for {per_request} digests")
        if k % expand_every == 0:
            receipts = expand(raw, digests) if compact else Receipts(orjson.loads(raw)["receipts"])[:]
            if [str(r.digest) for r in receipts] != digests:
                raise AssertionError("receipts are not in request order")
            if sampler is not None:
                sampler.offer(k, digests[0], receipts[0])
        return per_request

    return op


def hashing_op(per_request: int) -> Op:
    """The baseline: the plain RFC 9162 hashing loop (leaf hashes and root, hashlib only) over
    `per_request` fresh 33-byte entries, in this process; one "request" per call."""

    raw = os.urandom(33 * per_request)
    entries = [raw[i : i + 33] for i in range(0, len(raw), 33)]

    async def op(k: int) -> int:
        plain_root(entries)
        await asyncio.sleep(0)
        return per_request

    return op


async def _pieces(data: bytes | memoryview, piece: int) -> AsyncIterator[bytes]:
    view = memoryview(data)
    for i in range(0, len(view), piece):
        yield bytes(view[i : i + piece])


def upload_op(client: NotarClient, document: Callable[[int], bytes], *, piece: int = 1 << 20) -> Op:
    """PUT /v1/documents streaming `document(k)` in `piece`-byte writes; returns its size."""

    async def op(k: int) -> int:
        data = document(k)
        answer = await client.upload(_pieces(data, piece))
        if answer.document["size"] != len(data):
            raise AssertionError(f"stored {answer.document['size']} bytes of {len(data)}")
        return len(data)

    return op


def inclusion_op(client: NotarClient, *, size: int, seed: int = 1) -> Op:
    """GET /v1/proofs/inclusion for a random index below `size`, in the tree of `size`."""
    rng = random.Random(seed)

    async def op(k: int) -> int:
        proof = await client.inclusion_proof(rng.randrange(size), size)
        if size > 1 and not proof:
            raise AssertionError("an empty inclusion proof in a tree of more than one entry")
        return 1

    return op
