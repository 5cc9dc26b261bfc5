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
5. compact: bulk POST /v1/digests (--bulk-size digests a request, --bulk-clients at once) asking
   for the compact answer (Accept: application/vnd.notar.batch+json), beside the same asking for
   the default answer, both taken as bytes (every 16th answer read in full and its receipts
   checked), beside the plain RFC 9162 hashing loop (hashlib leaf hashes and root) over as many
   entries per "request" in this process: digests/s, p50/p99, server CPU per digest, and the
   same-round ratios compact ÷ default, compact ÷ plain loop.

Every round runs every contestant once, in an order rotating from round to round, so a noisy
machine slows all of them alike; figures are medians over rounds, each ratio the median of
same-round ratios. The CPU used by the server (and SeaweedFS) in each run is read from /proc, to
show what bounds a figure. Sampled receipts are verified offline after the run: no numbers
otherwise. `--profile DIR` adds one py-spy recording of the server per measurement.

    .venv/bin/python -m loadtest.bench_api                    # full run, 5 rounds
    .venv/bin/python -m loadtest.bench_api --quick            # a fast look
    .venv/bin/python -m loadtest.bench_api --profile /tmp/prof --skip documents
    .venv/bin/python -m loadtest.bench_api --skip bulk single documents proofs \
        --bulk-size 1000 --bulk-clients 8 --rounds 5 --seconds 6      # compact vs default
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp
from aiohttp import web

from loadtest.bench_api_measure import (
    COMPACT,
    DEFAULT,
    HELLO,
    NOTAR,
    OPEN_IN_FLIGHT,
    PLAIN,
    RAW,
    Contestant,
    Sample,
    Sizes,
    Table,
    document_maker,
    measure,
    metric_sampler,
    published_size,
    verify_samples,
)
from loadtest.bench_api_report import machine, profile_all, report, summarize_profile
from loadtest.loadgen import (
    Op,
    ReceiptSampler,
    bulk_op,
    closed_loop,
    hashing_op,
    inclusion_op,
    notar_client,
    notarize_op,
    upload_op,
)
from loadtest.profiled import top
from loadtest.servers import (
    HELLO_SIZE,
    S3Side,
    Server,
    hello_app,
    hello_server,
    notar_server,
    process_tree,
    seaweed,
)
from services.sdk import NotarClient

if TYPE_CHECKING:
    from types_aiobotocore_s3.type_defs import ObjectIdentifierTypeDef

# Kept importable from here since the servers, measuring and report moved to their own modules.
__all__ = [
    "COMPACT", "DEFAULT", "HELLO", "HELLO_SIZE", "PLAIN", "document_maker", "hello_app", "main", "parse_args",
    "summarize_profile",
]

MEASUREMENTS = ("bulk", "compact", "single", "documents", "proofs")


# -------------------------------------------------------------------------------- the run


async def run(args: argparse.Namespace, sizes: Sizes, root: Path) -> Table:
    table = Table()
    wanted = [m for m in MEASUREMENTS if m not in args.skip]
    with contextlib.ExitStack() as stack:
        fs_server, fs_key = stack.enter_context(notar_server("notar-fs", root, cprofile=args.cprofile))
        hello = stack.enter_context(hello_server(root))
        s3 = None
        if "documents" in wanted:
            s3 = stack.enter_context(seaweed(root, stack))
        await _run(args, sizes, table, wanted, fs_server, fs_key, hello, s3)
    return table



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
                           sizes.bulk_clients, big * 100, lambda: process_tree(fs.pid),
                           lambda: metric_sampler(plain, fs.url)),
                Contestant("bulk-open", NOTAR, "digests",
                           lambda r: notarize_op(bulk_client, per_request=sizes.bulk_per_request),
                           sizes.bulk_clients * 4, big * 100, lambda: process_tree(fs.pid),
                           lambda: metric_sampler(plain, fs.url), reference("bulk", NOTAR, 0.5)),
            ]
        if "compact" in wanted:
            n = sizes.bulk_per_request
            forms = [] if args.answers == "default" else [True]
            forms += [] if args.answers == "compact" else [False]

            def bulk(form: bool) -> Callable[[int], Op]:
                return lambda r: bulk_op(bulk_client, per_request=n, compact=form, sampler=sampler)

            contestants += [
                Contestant("compact", COMPACT if form else DEFAULT, "digests", bulk(form),
                           sizes.bulk_clients, big * 100, lambda: process_tree(fs.pid),
                           lambda: metric_sampler(plain, fs.url))
                for form in forms
            ]
            contestants.append(
                Contestant("compact", PLAIN, "digests", lambda r: hashing_op(n), 1, big * 100, lambda: []))
        if "single" in wanted:
            contestants += [
                Contestant("single", NOTAR, "requests",
                           lambda r: notarize_op(single_client, per_request=1, sampler=sampler),
                           sizes.single_connections, 1_000_000, lambda: process_tree(fs.pid)),
                Contestant("single", HELLO, "requests",
                           lambda r: notarize_op(hello_client, per_request=1, check=False),
                           sizes.single_connections, 1_000_000, lambda: process_tree(hello.pid)),
                Contestant("single-open", NOTAR, "requests",
                           lambda r: notarize_op(open_client, per_request=1),
                           OPEN_IN_FLIGHT, 1_000_000, lambda: process_tree(fs.pid),
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
                           sizes.proof_connections, 5_000_000, lambda: process_tree(fs.pid)),
                Contestant("proofs", HELLO, "proofs",
                           lambda r: inclusion_op(hello_client, size=HELLO_SIZE, seed=r),
                           sizes.proof_connections, 5_000_000, lambda: process_tree(hello.pid)),
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
            for top, under in ((COMPACT, DEFAULT), (COMPACT, PLAIN), (DEFAULT, PLAIN)):
                x, y = current.get(("compact", top)), current.get(("compact", under))
                if x and y and y.result.unit_rate > 0:
                    table.ratios.setdefault(("compact", f"{top} ÷ {under}"), []).append(
                        x.result.unit_rate / y.result.unit_rate)
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
    p.add_argument("--cprofile", type=Path,
                   help="run the fs server with every thread under cProfile, its profile written to "
                   "this file and its top functions printed (rates are then slower than without)")
    p.add_argument("--answers", choices=("both", "compact", "default"), default="both",
                   help="which answers the compact measurement asks for (default both)")
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
    if ns.cprofile is not None:
        print(f"cProfile of the server, every thread ({ns.cprofile}):")
        print(top(str(ns.cprofile)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
