"""API benchmark: `notar serve` (a subprocess on 127.0.0.1, fsync on as in production) beside an
aiohttp hello-world app and raw aiobotocore PUTs, in interleaved rounds of one run.

Four measurements, each one bounded in requests and in seconds (loadtest/loadgen.py):

1. bulk: POST /v1/digests with 10,000 fresh digests per request from several concurrent clients
   (closed loop): digests/s, and p50/p99 of the receipt latency end to end (request sent → every
   receipt received and parsed by the SDK). Then open loop at half that rate: the latency of a
   server that is not saturated.
2. single: one digest per request, closed loop over many connections: notar beside a hello-world
   aiohttp app answering the same SDK call with a constant body; requests/s, p50/p99. Then notar
   in open loop at 1/3 of hello world's rate: can it sustain it, at which p99?
3. documents: PUT /v1/documents of fresh bytes into `notar serve` with STORE=s3 on a SeaweedFS
   started for the run, beside aiobotocore `put_object` of the very same bytes to the same
   SeaweedFS: MB/s.
4. proofs: GET /v1/proofs/inclusion at random indices of the published tree, beside the
   hello-world app answering a constant proof: proofs/s.

Every round runs every contestant once, in an order rotating from round to round, so a noisy
machine slows all of them alike; figures are medians over rounds, each ratio the median of
same-round ratios. The CPU used by the server (and SeaweedFS) in each run is read from /proc, to
show what bounds a figure. Sampled receipts are verified offline after the run: no numbers
otherwise. `--profile DIR` adds one py-spy recording of the server per measurement.

    .venv/bin/python -m loadtest.bench_api                    # full run, 5 rounds
    .venv/bin/python -m loadtest.bench_api --quick            # a fast look
    .venv/bin/python -m loadtest.bench_api --profile /tmp/prof --skip documents
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import orjson
from aiohttp import web

from loadtest.loadgen import (
    LoadResult,
    Op,
    ReceiptSampler,
    closed_loop,
    inclusion_op,
    notar_client,
    notarize_op,
    open_loop,
    upload_op,
)
from merkle.checkpoint import parse_checkpoint
from merkle.note import parse_note
from merkle.receipt import verify_receipt
from services.sdk import NotarClient

if TYPE_CHECKING:
    from types_aiobotocore_s3.type_defs import ObjectIdentifierTypeDef

ORIGIN = "bench.notar.localhost/log"
REPO = Path(__file__).resolve().parent.parent
TENANT = "bench"
MEASUREMENTS = ("bulk", "single", "documents", "proofs")
NOTAR, HELLO, RAW = "notar serve", "aiohttp hello world", "raw aiobotocore put_object"
GOALS = {
    "bulk": "≥ 100,000 digests/s, p99 < 500 ms",
    "single": "≥ 1/3 of hello world, p99 < 500 ms",
    "documents": "≥ 0.9 × raw PUTs",
    "proofs": "≥ 20,000 proofs/s",
}
OPEN_IN_FLIGHT = 1024  # single digests, open loop: connections and requests in flight at most
HELLO_SIZE = 1 << 20
HELLO_PROOF = {"index": 0, "size": HELLO_SIZE, "proof": ["ab" * 32] * 20}


# ------------------------------------------------------------------------- the hello world


def hello_app() -> web.Application:
    """The reference point: aiohttp answering the SDK's calls with constant bodies."""
    receipts = orjson.dumps({"receipts": [{"hello": "world"}]})
    proof = orjson.dumps(HELLO_PROOF)

    async def digests(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=receipts, content_type="application/json")

    async def inclusion(request: web.Request) -> web.Response:
        return web.Response(body=proof, content_type="application/json")

    async def ready(request: web.Request) -> web.Response:
        return web.Response(text="ready\n")

    app = web.Application()
    app.router.add_post("/v1/digests", digests)
    app.router.add_get("/v1/proofs/inclusion", inclusion)
    app.router.add_get("/readyz", ready)
    return app


# -------------------------------------------------------------------------------- servers


def free_port() -> int:
    from tests.seaweed import free_ports

    return free_ports(1)[0]


@dataclass
class Server:
    name: str
    process: subprocess.Popen[bytes]
    url: str
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process `pid` (all its threads), from /proc."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def notar_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "services.cli", *args]


def add_tenant(flags: Sequence[str], env: dict[str, str], cwd: Path) -> str:
    """`notar tenant add bench …`: the API key printed on the last line."""
    out = subprocess.run(
        notar_command("tenant", "add", TENANT, *flags),
        env=env, cwd=cwd, capture_output=True, text=True, timeout=120, check=False,
    )
    if out.returncode != 0:
        raise SystemExit(f"notar tenant add failed: {out.stderr.strip()[-2000:]}")
    return out.stdout.strip().splitlines()[-1]


def start_server(name: str, command: list[str], url: str, env: dict[str, str], cwd: Path) -> Server:
    log = cwd / f"{name.replace(' ', '-')}.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            command, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
    server = Server(name, process, url, log)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{name} exited ({process.returncode}):\n{log.read_text()[-3000:]}")
        with contextlib.suppress(OSError):
            import urllib.request

            with urllib.request.urlopen(url + "/readyz", timeout=2) as r:
                if r.status == 200:
                    return server
        time.sleep(0.2)
    server.stop()
    raise SystemExit(f"{name} was not ready within 90 s:\n{log.read_text()[-3000:]}")


@contextlib.contextmanager
def notar_server(name: str, root: Path, flags: Sequence[str] = (), env: dict[str, str] | None = None
                 ) -> Iterator[tuple[Server, str]]:
    """`notar serve` (all roles) on a free loopback port with its own DATA_DIR and tenant."""
    data = root / name.replace(" ", "-")
    data.mkdir(parents=True)
    env = {**os.environ, **(env or {})}
    common = ["--data-dir", str(data), "--origin", ORIGIN, *flags]
    key = add_tenant(common, env, data)
    port = free_port()
    server = start_server(
        name,
        notar_command("serve", "--listen", f"127.0.0.1:{port}", *common),
        f"http://127.0.0.1:{port}",
        env,
        data,
    )
    try:
        yield server, key
    finally:
        server.stop()


@contextlib.contextmanager
def hello_server(root: Path) -> Iterator[Server]:
    port = free_port()
    server = start_server(
        "hello",
        [sys.executable, "-m", "loadtest.bench_api", "hello", "--port", str(port)],
        f"http://127.0.0.1:{port}",
        {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])},
        root,
    )
    try:
        yield server
    finally:
        server.stop()


# ---------------------------------------------------------------------------- measuring


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


def verify_samples(samples: Sequence[tuple[str, dict[str, Any]]], keys: dict[str, Any]) -> int:
    """Verify sampled receipts offline; SystemExit on the first that fails."""
    trusted = [keys["log"], keys["clock"], *keys.get("witnesses", [])]
    for digest, receipt in samples:
        result = verify_receipt(receipt, keys=trusted, digest=digest)
        if not result.valid:
            failed = [f"{c.name}: {c.detail}" for c in result.checks if not c.ok]
            raise SystemExit(f"a receipt from the run does not verify: {failed}")
    return len(samples)


# -------------------------------------------------------------------------------- the run


@dataclass
class Table:
    samples: dict[tuple[str, str], list[Sample]] = field(default_factory=dict)
    ratios: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    checked: int = 0
    notes: list[str] = field(default_factory=list)

    def add(self, c: Contestant, s: Sample) -> None:
        self.samples.setdefault((c.metric, c.name), []).append(s)


async def run(args: argparse.Namespace, sizes: Sizes, root: Path) -> Table:
    table = Table()
    wanted = [m for m in MEASUREMENTS if m not in args.skip]
    with contextlib.ExitStack() as stack:
        fs_server, fs_key = stack.enter_context(notar_server("notar-fs", root))
        hello = stack.enter_context(hello_server(root))
        s3 = None
        if "documents" in wanted:
            s3 = stack.enter_context(seaweed(root, stack))
        await _run(args, sizes, table, wanted, fs_server, fs_key, hello, s3)
    return table


@dataclass
class S3Side:
    server: Server
    key: str
    endpoint: str
    bucket: str
    access_key: str
    secret_key: str
    region: str
    weed_pid: int


@contextlib.contextmanager
def seaweed(root: Path, stack: contextlib.ExitStack) -> Iterator[S3Side]:
    from tests.seaweed import S3Target, ensure_bucket, start_seaweed

    weed = stack.enter_context(start_seaweed())
    target = S3Target(weed.endpoint, "notar-bench", weed.access_key, weed.secret_key, weed.region)
    ensure_bucket(target)
    flags = [
        "--store", "s3", "--s3-endpoint", target.endpoint, "--s3-bucket", target.bucket,
        "--s3-prefix", "notar/", "--s3-region", target.region,
    ]
    env = {"AWS_ACCESS_KEY_ID": target.access_key, "AWS_SECRET_ACCESS_KEY": target.secret_key}
    with notar_server("notar-s3", root, flags, env) as (server, key):
        yield S3Side(server, key, target.endpoint, target.bucket, target.access_key, target.secret_key,
                     target.region, weed.pid)


async def _run(
    args: argparse.Namespace,
    sizes: Sizes,
    table: Table,
    wanted: list[str],
    fs: Server,
    fs_key: str,
    hello: Server,
    s3: S3Side | None,
) -> None:
    big = 10 * sizes.bulk_clients + 8
    async with contextlib.AsyncExitStack() as stack:
        bulk_client = await stack.enter_async_context(
            notar_client(fs.url, fs_key, connections=sizes.bulk_clients, timeout_s=120))
        single_client = await stack.enter_async_context(
            notar_client(fs.url, fs_key, connections=sizes.single_connections))
        open_client = await stack.enter_async_context(
            notar_client(fs.url, fs_key, connections=OPEN_IN_FLIGHT))
        hello_client = await stack.enter_async_context(
            notar_client(hello.url, fs_key, connections=max(sizes.single_connections,
                                                            sizes.proof_connections)))
        proof_client = await stack.enter_async_context(
            notar_client(fs.url, None, connections=sizes.proof_connections))
        plain = await stack.enter_async_context(aiohttp.ClientSession())
        sampler = ReceiptSampler(every=7, keep=40)
        warm: dict[tuple[str, str], float] = {}

        def reference(metric: str, name: str, share: float) -> Callable[[], float]:
            """`share` of the request rate measured so far (median of the rounds, else the
            warm-up): the offered rate of an open-loop run."""
            def rate() -> float:
                done = table.samples.get((metric, name))
                base = statistics.median(s.result.rate for s in done) if done else warm[(metric, name)]
                return max(0.5, share * base)
            return rate

        contestants: list[Contestant] = []
        if "bulk" in wanted:
            contestants += [
                Contestant("bulk", NOTAR, "digests",
                           lambda r: notarize_op(bulk_client, per_request=sizes.bulk_per_request,
                                                 sampler=sampler),
                           sizes.bulk_clients, big * 100, lambda: [fs.pid],
                           lambda: metric_sampler(plain, fs.url)),
                Contestant("bulk-open", NOTAR, "digests",
                           lambda r: notarize_op(bulk_client, per_request=sizes.bulk_per_request),
                           sizes.bulk_clients * 4, big * 100, lambda: [fs.pid],
                           lambda: metric_sampler(plain, fs.url), reference("bulk", NOTAR, 0.5)),
            ]
        if "single" in wanted:
            contestants += [
                Contestant("single", NOTAR, "requests",
                           lambda r: notarize_op(single_client, per_request=1, sampler=sampler),
                           sizes.single_connections, 1_000_000, lambda: [fs.pid]),
                Contestant("single", HELLO, "requests",
                           lambda r: notarize_op(hello_client, per_request=1, check=False),
                           sizes.single_connections, 1_000_000, lambda: [hello.pid]),
                Contestant("single-open", NOTAR, "requests",
                           lambda r: notarize_op(open_client, per_request=1),
                           OPEN_IN_FLIGHT, 1_000_000, lambda: [fs.pid],
                           rate=reference("single", HELLO, 1 / 3)),
            ]
        if "proofs" in wanted:
            # A tree worth proving into: at least a few full tiles at every level that matters.
            async with notar_client(fs.url, fs_key, connections=4, timeout_s=120) as c:
                have = await published_size(plain, fs.url)
                if have < 200_000:
                    await asyncio.gather(*(c.notarize(_fresh(10_000)) for _ in range(4)))
                    await _wait_published(plain, fs.url, have + 40_000)
            contestants += [
                Contestant("proofs", NOTAR, "proofs",
                           lambda r: _proof_op(proof_client, plain, fs.url, r),
                           sizes.proof_connections, 5_000_000, lambda: [fs.pid]),
                Contestant("proofs", HELLO, "proofs",
                           lambda r: inclusion_op(hello_client, size=HELLO_SIZE, seed=r),
                           sizes.proof_connections, 5_000_000, lambda: [hello.pid]),
            ]
        if s3 is not None:
            contestants += await _document_contestants(stack, sizes, s3)

        # Warm-up: every closed-loop contestant once, briefly, not recorded.
        for who in contestants:
            if who.rate is None:
                warm[(who.metric, who.name)] = await _warm(who)
        for rnd in range(sizes.rounds):
            order = contestants[rnd % len(contestants):] + contestants[: rnd % len(contestants)]
            current: dict[tuple[str, str], Sample] = {}
            for who in order:
                s = await measure(who, rnd, sizes.seconds)
                current[(who.metric, who.name)] = s
                table.add(who, s)
                print(f"  round {rnd + 1} {who.metric:9} {who.name:28} {s.result.summary()}"
                      f" server {s.server_cores:.2f} cores, client {s.client_cores:.2f}"
                      + (f" {s.extra}" if s.extra else ""), flush=True)
            for metric, base in (("single", HELLO), ("proofs", HELLO), ("documents", RAW)):
                a, b = current.get((metric, NOTAR)), current.get((metric, base))
                if a and b and b.result.unit_rate > 0:
                    ratio = a.result.unit_rate / b.result.unit_rate
                    table.ratios.setdefault((metric, base), []).append(ratio)
            if s3 is not None:
                await _delete_documents(s3)
        keys = await NotarClient(fs.url, session=plain).keys()
        table.checked = verify_samples(sampler.samples, keys)
        if args.profile:
            await profile_all(args.profile, contestants, fs, sizes, table)


def _fresh(n: int) -> list[str]:
    from loadtest.loadgen import random_digests

    return random_digests(n)


async def _wait_published(session: aiohttp.ClientSession, url: str, size: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if await published_size(session, url) >= size:
            return
        await asyncio.sleep(0.2)  # polling a remote server: no local event to wait on


def _proof_op(client: NotarClient, session: aiohttp.ClientSession, url: str, rnd: int) -> Op:
    size: list[int] = []
    inner: list[Op] = []

    async def op(k: int) -> int:
        if not inner:  # the published size at the start of the run
            size.append(await published_size(session, url))
            inner.append(inclusion_op(client, size=size[0], seed=rnd))
        return await inner[0](k)

    return op


async def _warm(c: Contestant) -> float:
    """Run `c` for two seconds, unrecorded; its request rate."""
    r = await closed_loop(c.op(1000), concurrency=c.concurrency, max_requests=c.max_requests,
                          max_seconds=2.0)
    return r.rate


async def _document_contestants(stack: contextlib.AsyncExitStack, sizes: Sizes, s3: S3Side
                                ) -> list[Contestant]:
    from aiobotocore.config import AioConfig
    from aiobotocore.session import AioSession

    doc_client = await stack.enter_async_context(
        notar_client(s3.server.url, s3.key, connections=sizes.doc_concurrency, timeout_s=300))
    raw = await stack.enter_async_context(AioSession().create_client(
        "s3", endpoint_url=s3.endpoint, region_name=s3.region, aws_access_key_id=s3.access_key,
        aws_secret_access_key=s3.secret_key,
        config=AioConfig(max_pool_connections=sizes.doc_concurrency, s3={"addressing_style": "path"})))
    make = document_maker(sizes.doc_bytes)

    def raw_op(rnd: int) -> Op:
        async def op(k: int) -> int:
            data = make(rnd, k)
            await raw.put_object(Bucket=s3.bucket, Key=f"raw-bench/{rnd}/{k}", Body=data)
            return len(data)
        return op

    def pids() -> list[int]:
        return [s3.server.pid, s3.weed_pid]

    def raw_pids() -> list[int]:
        return [s3.weed_pid]

    return [
        Contestant("documents", NOTAR, "bytes",
                   lambda r: upload_op(doc_client, lambda k: make(r, k)),
                   sizes.doc_concurrency, 100_000, pids),
        Contestant("documents", RAW, "bytes", raw_op, sizes.doc_concurrency, 100_000, raw_pids),
    ]


async def _delete_documents(s3: S3Side) -> None:
    """Keep SeaweedFS's disk bounded: drop this round's documents (outside any timing)."""
    from aiobotocore.session import AioSession

    async with AioSession().create_client(
        "s3", endpoint_url=s3.endpoint, region_name=s3.region, aws_access_key_id=s3.access_key,
        aws_secret_access_key=s3.secret_key,
    ) as c:
        for prefix in ("raw-bench/", "notar/documents/"):
            paginator = c.get_paginator("list_objects_v2")
            async for page in paginator.paginate(Bucket=s3.bucket, Prefix=prefix):
                keys: list[ObjectIdentifierTypeDef] = [{"Key": o["Key"]} for o in page.get("Contents", [])]
                if keys:
                    await c.delete_objects(Bucket=s3.bucket, Delete={"Objects": keys, "Quiet": True})


# ------------------------------------------------------------------------------ profiling


async def profile_all(out: Path, contestants: Sequence[Contestant], fs: Server, sizes: Sizes,
                      table: Table) -> None:
    """One py-spy recording of the server per notar measurement, summarised by self time."""
    beside = os.path.join(os.path.dirname(sys.executable), "py-spy")
    spy = beside if os.access(beside, os.X_OK) else shutil.which("py-spy")
    if spy is None:
        table.notes.append("py-spy not installed: no profile (pip install py-spy)")
        return
    os.makedirs(out, exist_ok=True)
    for c in contestants:
        if c.name != NOTAR:
            continue
        pid = c.pids()[0]
        raw = out / f"{c.metric}.txt"
        seconds = max(2, int(sizes.seconds))
        spy_proc = await asyncio.create_subprocess_exec(
            spy, "record", "-p", str(pid), "-d", str(seconds), "-r", "250", "--format", "raw",
            "-o", str(raw), "--nonblocking",
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
        await asyncio.sleep(0.5)
        await measure(c, 2000, seconds)
        _, err = await asyncio.wait_for(spy_proc.communicate(), timeout=60)
        if spy_proc.returncode != 0 or not raw.exists():
            table.notes.append(f"py-spy failed on {c.metric}: {err.decode()[-300:]}")
            continue
        table.notes.append(f"profile of {c.metric} ({raw}):\n" + summarize_profile(raw.read_text()))


def summarize_profile(collapsed: str, top: int = 14) -> str:
    """Self and inclusive shares of the hottest functions in py-spy's collapsed stacks."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [f.split(" (")[0] + " (" + f.split(" (")[-1].split(":")[0].rsplit("/", 1)[-1] + ")"
                  if " (" in f else f for f in stack.split(";")]
        if frames:
            own[frames[-1]] += n
        for f in set(frames):
            inclusive[f] += n
    if not total:
        return "  (no samples)"
    lines = ["  self:"] + [f"    {100 * n / total:5.1f}%  {f}" for f, n in own.most_common(top)]
    lines.append("  inclusive:")
    lines += [f"    {100 * n / total:5.1f}%  {f}" for f, n in inclusive.most_common(top + 10)]
    return "\n".join(lines)


# -------------------------------------------------------------------------------- report


def machine() -> str:
    model = "unknown CPU"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (f"{cores} cores ({model}), Python {platform.python_version()}, aiohttp {aiohttp.__version__}, "
            f"orjson {orjson.__version__}, asyncio default event loop")


def _fmt_rate(metric: str, value: float) -> str:
    if metric == "documents":
        return f"{value / 1e6:,.1f} MB/s"
    unit = {"bulk": "digests/s", "single": "req/s", "proofs": "proofs/s"}[metric.removesuffix("-open")]
    return f"{value:,.0f} {unit}"


def _label(metric: str, sizes: Sizes, samples: Sequence[Sample]) -> str:
    offered = statistics.median(s.extra.get("offered", 0.0) for s in samples)
    return {
        "bulk": f"bulk, closed loop ({sizes.bulk_per_request:,} digests/request, "
                f"{sizes.bulk_clients} clients)",
        "bulk-open": f"bulk, open loop at half the closed-loop rate ({offered:,.2f} requests/s of "
                     f"{sizes.bulk_per_request:,} offered)",
        "single": f"single digest, closed loop ({sizes.single_connections} connections)",
        "single-open": f"single digest, open loop at 1/3 of hello world ({offered:,.0f} req/s offered, "
                       f"≤ {OPEN_IN_FLIGHT} in flight)",
        "documents": f"documents into SeaweedFS ({sizes.doc_bytes >> 20} MiB, "
                     f"{sizes.doc_concurrency} at a time)",
        "proofs": f"inclusion proofs ({sizes.proof_connections} connections)",
    }[metric]


def report(table: Table, sizes: Sizes) -> str:
    rows = [
        "| measurement | contestant | rate (median) | p50 | p99 | server CPU | server CPU per unit "
        "| client CPU |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    med = statistics.median
    order = ("bulk", "bulk-open", "single", "single-open", "proofs", "documents")
    for (metric, name), samples in sorted(table.samples.items(), key=lambda kv: order.index(kv[0][0])):
        rate = med(s.result.unit_rate for s in samples)
        p50 = med(s.result.quantile(0.5) for s in samples) * 1000
        p99 = med(s.result.quantile(0.99) for s in samples) * 1000
        errors = sum(s.result.errors + s.result.dropped for s in samples)
        failed = f" ({errors} failed or dropped)" if errors else ""
        server, client = med(s.server_cores for s in samples), med(s.client_cores for s in samples)
        per = med(s.server_cores / s.result.unit_rate for s in samples if s.result.unit_rate)
        per_unit = f"{per * 1e6 * 1e6:,.0f} µs/MB" if metric == "documents" else f"{per * 1e6:,.1f} µs"
        rows.append(
            f"| {_label(metric, sizes, samples)} | {name}{failed} | {_fmt_rate(metric, rate)} "
            f"| {p50:,.1f} ms | {p99:,.1f} ms | {server:.2f} cores | {per_unit} | {client:.2f} cores |")
    rows += ["", "| ratio (median of same-round ratios) | value | goal |", "| --- | ---: | --- |"]
    for (metric, base), values in table.ratios.items():
        rows.append(f"| {metric}: notar ÷ {base} | {med(values):.3f} | {GOALS[metric]} |")
    for metric, goal, unit in (("bulk", 100_000, "digests/s"), ("proofs", 20_000, "proofs/s")):
        if (metric, NOTAR) in table.samples:
            rate = med(s.result.unit_rate for s in table.samples[(metric, NOTAR)])
            rows.append(f"| {metric}: notar ÷ {goal:,} {unit} | {rate / goal:.3f} | {GOALS[metric]} |")
    for metric in ("bulk", "bulk-open", "single-open"):
        if (metric, NOTAR) in table.samples:
            p99 = med(s.result.quantile(0.99) for s in table.samples[(metric, NOTAR)]) * 1000
            rows.append(f"| {metric}: p99 ÷ 500 ms | {p99 / 500:.2f} | < 1 |")
    bulk = table.samples.get(("bulk", NOTAR), []) + table.samples.get(("bulk-open", NOTAR), [])
    if bulk:
        lag = max(s.extra.get("lag", 0.0) for s in bulk)
        rows.append(f"| bulk: largest publication lag seen (entries) | {lag:,.0f} | (informative) |")
    return "\n".join(rows)


# ---------------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command")
    h = sub.add_parser("hello", help="run the hello-world app (used by the benchmark itself)")
    h.add_argument("--port", type=int, required=True)
    p.add_argument("--quick", action="store_true", help="2 rounds of 3 s, small documents")
    p.add_argument("--rounds", type=int, help="interleaved rounds (default 5; --quick 2)")
    p.add_argument("--seconds", type=float, help="bound of each run in seconds (default 8; --quick 3)")
    p.add_argument("--bulk-clients", type=int, default=4, help="concurrent bulk clients (default 4)")
    p.add_argument("--bulk-size", type=int, default=10_000, help="digests per bulk request (default 10,000)")
    p.add_argument("--single-connections", type=int, default=512,
                   help="single-digest connections, closed loop (default 512)")
    p.add_argument("--proof-connections", type=int, default=64, help="proof connections (default 64)")
    p.add_argument("--doc-mib", type=int, help="document size in MiB (default 32; --quick 8)")
    p.add_argument("--doc-concurrency", type=int, default=2, help="documents at a time (default 2)")
    p.add_argument("--skip", nargs="*", default=[], choices=MEASUREMENTS, help="measurements to leave out")
    p.add_argument("--profile", type=Path, help="record the server with py-spy into this directory")
    ns = p.parse_args(argv)
    if ns.command is None:
        for name in ("rounds", "seconds", "doc_mib"):
            value = getattr(ns, name)
            if value is not None and value <= 0:
                p.error(f"--{name.replace('_', '-')} must be positive")
        if ns.bulk_size <= 0 or ns.bulk_size > 10_000:
            p.error("--bulk-size must be 1..10,000 (the API's limit)")
        if min(ns.bulk_clients, ns.single_connections, ns.proof_connections, ns.doc_concurrency) <= 0:
            p.error("client and connection counts must be positive")
    return ns


def sizes_of(ns: argparse.Namespace) -> Sizes:
    return Sizes(
        rounds=ns.rounds or (2 if ns.quick else 5),
        seconds=ns.seconds or (3.0 if ns.quick else 8.0),
        bulk_clients=ns.bulk_clients,
        bulk_per_request=ns.bulk_size,
        single_connections=ns.single_connections,
        doc_bytes=(ns.doc_mib or (8 if ns.quick else 32)) << 20,
        doc_concurrency=ns.doc_concurrency,
        proof_connections=ns.proof_connections,
    )


def main(argv: Sequence[str] | None = None) -> int:
    ns = parse_args(argv)
    if ns.command == "hello":
        web.run_app(hello_app(), host="127.0.0.1", port=ns.port, print=None)
        return 0
    sizes = sizes_of(ns)
    print(f"machine: {machine()}", flush=True)
    load_before = os.getloadavg()
    root = Path(tempfile.mkdtemp(prefix="notar-bench-api-"))
    try:
        table = asyncio.run(run(ns, sizes, root))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print()
    print(f"machine: {machine()}")
    print("load average (1, 5, 15 min) before: {:.2f} {:.2f} {:.2f}, after: {:.2f} {:.2f} {:.2f}".format(
        *load_before, *os.getloadavg()))
    print(f"rounds: {sizes.rounds}, each run bounded to {sizes.seconds:g} s; "
          f"{table.checked} sampled receipts verified offline")
    print(report(table, sizes))
    for note in table.notes:
        print(note)
    return 0


if __name__ == "__main__":
    sys.exit(main())
