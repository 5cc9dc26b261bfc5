"""Storage benchmark: notar's storage/s3.py beside raw aiobotocore on the same SeaweedFS, and the
directory store beside a plain write+fsync loop, in one process.

Every round runs each implementation once, in an order that rotates from round to round, so a
noisy machine slows all of them alike; rates are medians over rounds and each ratio is the median
of the ratios measured within the same round.

S3 workloads: 8 MiB objects at concurrency 8 (MB/s) and 8 KiB objects at concurrency 32
(ops/s), each put and get. "raw, defaults" is what one writes without notar: a default
aiobotocore client (same pool size and addressing) and put_object / get_object. "raw, same
settings" is that client configured like the driver's (unsigned payload, SHA-256 checksum
computed by the caller), so its ratio isolates the driver's own code.

    .venv/bin/python -m loadtest.bench_storage               # starts SeaweedFS; 5 rounds
    .venv/bin/python -m loadtest.bench_storage --quick       # 2 rounds, fewer objects
    .venv/bin/python -m loadtest.bench_storage --only "put 8 KiB" --impl "s3.py put" \\
        --impl "raw, same settings" --rounds 8             # one comparison, alone
    .venv/bin/python -m loadtest.bench_storage --endpoint http://127.0.0.1:8333 --bucket b
        (with AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY for an S3 that is already running)
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import cProfile
import functools
import hashlib
import os
import platform
import pstats
import statistics
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession

from storage.fs import FsStore
from storage.s3 import S3Store
from tests.seaweed import S3Target, ensure_bucket, find_weed, start_seaweed

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client

MiB = 1024 * 1024
BIG, SMALL = 8 * MiB, 8 * 1024
BIG_CONCURRENCY, SMALL_CONCURRENCY = 8, 32
Op = Callable[[str], Awaitable[Any]]


@dataclass
class Sizes:
    rounds: int
    big: int  # 8 MiB objects per implementation per round
    small: int  # 8 KiB objects per implementation per round
    fs: int  # 8 KiB files per implementation per round
    only: str = ""  # run only the workloads whose name contains this
    impls: tuple[str, ...] = ()  # and only these implementations (all when empty)

    def chosen(self, metric: str, ops: dict[str, Op]) -> dict[str, Op]:
        if self.only not in metric:
            return {}
        return {name: op for name, op in ops.items() if not self.impls or name in self.impls}


@dataclass
class Results:
    """rates[metric][implementation]: one rate per round; cpu[...]: this process's CPU seconds
    per operation, per round (less disturbed than wall time by other work on the machine)."""

    rates: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    cpu: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    calls: dict[str, dict[str, float]] = field(default_factory=dict)

    def add(self, metric: str, name: str, rate: float, cpu_per_op: float) -> None:
        self.rates.setdefault(metric, {}).setdefault(name, []).append(rate)
        self.cpu.setdefault(metric, {}).setdefault(name, []).append(cpu_per_op)


async def run_ops(op: Op, keys: Sequence[str], concurrency: int) -> tuple[float, float]:
    """Wall seconds and this process's CPU seconds to run ``op`` once per key with
    ``concurrency`` workers."""
    it = iter(keys)

    async def worker() -> None:
        for key in it:
            await op(key)
    started, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started, time.process_time() - cpu


def raw_config(pool: int, *, like_driver: bool) -> AioConfig:
    if like_driver:
        return AioConfig(max_pool_connections=pool, retries={"total_max_attempts": 1},
                         s3={"addressing_style": "path", "payload_signing_enabled": False},
                         request_checksum_calculation="when_required")
    return AioConfig(max_pool_connections=pool, s3={"addressing_style": "path"})


async def bench_s3(target: S3Target, sizes: Sizes, results: Results) -> None:
    session = AioSession()
    pool = max(BIG_CONCURRENCY, SMALL_CONCURRENCY)
    store = await S3Store.from_config(target.config(prefix="bench", max_connections=pool),
                                      session=session)
    clients: dict[str, S3Client] = {}
    for name, like in (("raw, defaults", False), ("raw, same settings", True)):
        clients[name] = await session.create_client(
            "s3", endpoint_url=target.endpoint, region_name=target.region,
            aws_access_key_id=target.access_key, aws_secret_access_key=target.secret_key,
            config=raw_config(pool, like_driver=like)).__aenter__()
    big, small = os.urandom(BIG), os.urandom(SMALL)
    bucket = target.bucket

    def raw_put(client: S3Client, body: bytes, checksum: bool) -> Op:
        async def op(key: str) -> None:
            if checksum:  # what the driver does, by hand
                digest = await asyncio.to_thread(hashlib.sha256, body) if len(body) > SMALL \
                    else hashlib.sha256(body)
                await client.put_object(Bucket=bucket, Key="bench/" + key, Body=body,
                                        ChecksumSHA256=base64.b64encode(digest.digest()).decode())
            else:
                await client.put_object(Bucket=bucket, Key="bench/" + key, Body=body)
        return op

    def raw_get(client: S3Client) -> Op:
        async def op(key: str) -> bytes:
            r = await client.get_object(Bucket=bucket, Key="bench/" + key)
            async with r["Body"] as b:
                return await b.read()
        return op

    def puts(body: bytes) -> dict[str, Op]:
        return {
            "s3.py put_if_absent": lambda k: store.put_if_absent(k, body),
            "s3.py put": lambda k: store.put(k, body),
            "raw, defaults": raw_put(clients["raw, defaults"], body, False),
            "raw, same settings": raw_put(clients["raw, same settings"], body, True),
        }
    gets: dict[str, Op] = {"s3.py get": store.get, "raw, defaults": raw_get(clients["raw, defaults"])}

    # Objects to read back, written by the driver (SHA-256 checksummed, as in production), a
    # set for each reader so that neither reads what the other just pulled into a cache.
    for label, body, count in (("big", big, sizes.big), ("small", small, sizes.small)):
        for name in gets:
            await run_ops(functools.partial(store.put, data=body),
                          [f"read/{slug(name)}/{label}/{i}" for i in range(count)], 8)

    workloads: list[tuple[str, dict[str, Op], str, int, int, float]] = [
        ("put 8 MiB, c=8: MB/s", puts(big), "big", sizes.big, BIG_CONCURRENCY, BIG / 1e6),
        ("get 8 MiB, c=8: MB/s", gets, "big", sizes.big, BIG_CONCURRENCY, BIG / 1e6),
        ("put 8 KiB, c=32: ops/s", puts(small), "small", sizes.small, SMALL_CONCURRENCY, 1.0),
        ("get 8 KiB, c=32: ops/s", gets, "small", sizes.small, SMALL_CONCURRENCY, 1.0),
    ]
    workloads = [(metric, sizes.chosen(metric, ops), label, count, concurrency, unit)
                 for metric, ops, label, count, concurrency, unit in workloads
                 if sizes.chosen(metric, ops)]

    def keys_for(metric: str, name: str, label: str, run: str, count: int) -> list[str]:
        if metric.startswith("get"):
            return [f"read/{slug(name)}/{label}/{i}" for i in range(count)]
        return [f"{run}/{slug(name)}/{label}/{i}" for i in range(count)]

    for r in range(sizes.rounds):
        for metric, ops, label, count, concurrency, unit in workloads:
            names = list(ops)
            for name in names[r % len(names):] + names[:r % len(names)]:
                keys = keys_for(metric, name, label, f"r{r}", count)
                seconds, cpu = await run_ops(ops[name], keys, concurrency)
                results.add(metric, name, count * unit / seconds, cpu / count)
        async for key in store.list(f"r{r}/"):  # keep the server's disk bounded
            await store.delete(key)
        print(f"  s3 round {r + 1}/{sizes.rounds} done", flush=True)
    # Python function calls per operation: the driver's own work, free of the noise of a
    # shared machine (coroutine resumptions count as calls, alike for every implementation).
    for metric, ops, label, count, concurrency, _ in workloads:
        for name, op in ops.items():
            keys = keys_for(metric, name, label, "calls", min(40, count))
            profile = cProfile.Profile()
            profile.enable()
            await run_ops(op, keys, concurrency)
            profile.disable()
            calls = pstats.Stats(profile).total_calls  # type: ignore[attr-defined]
            results.calls.setdefault(metric, {})[name] = calls / len(keys)
    async for key in store.list():
        await store.delete(key)
    for client in clients.values():
        await client.__aexit__(None, None, None)
    await store.close()


def slug(name: str) -> str:
    return name.replace(" ", "_").replace(",", "").replace(".", "")


async def bench_fs(root: Path, sizes: Sizes, results: Results) -> None:
    data = os.urandom(SMALL)

    def plain_loop(directory: Path, n: int) -> None:
        directory.mkdir()
        for i in range(n):
            fd = os.open(directory / str(i), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            os.write(fd, data)
            os.fsync(fd)
            os.close(fd)

    metric = "fs put 8 KiB immutable, fsync: ops/s"
    for r in range(sizes.rounds):
        for name in ("plain write+fsync loop", "fs.py put_if_absent, c=1",
                     "fs.py put_if_absent, c=32"):
            base = root / f"r{r}-{name.split()[0]}-{name[-1]}"
            if name.startswith("plain"):
                started, cpu = time.perf_counter(), time.process_time()
                await asyncio.to_thread(plain_loop, base, sizes.fs)
                seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
            else:
                store = FsStore(base)
                keys = [f"tile/0/{i}" for i in range(sizes.fs)]
                seconds, cpu = await run_ops(functools.partial(store.put_if_absent, data=data),
                                             keys, 1 if name.endswith("c=1") else 32)
                await store.close()
            results.add(metric, name, sizes.fs / seconds, cpu / sizes.fs)
    print("  fs done", flush=True)


def table(results: Results, baselines: Sequence[str]) -> str:
    """One row per workload and implementation; a ratio column per baseline present."""
    lines = ["| workload | implementation | median rate | client CPU µs/op | Python calls/op "
             "| ratio to " + " | ratio to ".join(baselines) + " |",
             "| --- | --- | ---: | ---: | ---: |" + " ---: |" * len(baselines)]
    for metric, by_name in results.rates.items():
        for name, rates in by_name.items():
            cells = []
            for base in baselines:
                if base not in by_name:
                    cells.append("")
                    continue
                ratios = [a / b for a, b in zip(rates, by_name[base], strict=True)]
                cells.append(f"{statistics.median(ratios):.2f}")
            cpu = statistics.median(results.cpu[metric][name]) * 1e6
            calls = results.calls.get(metric, {}).get(name)
            lines.append(f"| {metric} | {name} | {statistics.median(rates):,.0f} | {cpu:,.0f} | "
                         f"{'' if calls is None else f'{calls:,.0f}'} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


@contextmanager
def s3_target(args: argparse.Namespace) -> Iterator[tuple[S3Target, str]]:
    if args.endpoint:
        target = S3Target(args.endpoint, args.bucket, os.environ["AWS_ACCESS_KEY_ID"],
                          os.environ["AWS_SECRET_ACCESS_KEY"])
        ensure_bucket(target)
        yield target, f"S3 at {args.endpoint}"
        return
    weed = find_weed()
    version = subprocess.run([weed or "weed", "version"], capture_output=True, text=True,
                             check=False).stdout.strip()
    with start_seaweed() as server:
        target = S3Target(server.endpoint, args.bucket, server.access_key, server.secret_key)
        ensure_bucket(target)
        yield target, f"SeaweedFS `weed mini` on loopback ({version})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 rounds, fewer objects")
    parser.add_argument("--rounds", type=int)
    parser.add_argument("--endpoint", help="an S3 already running (default: start SeaweedFS)")
    parser.add_argument("--bucket", default="notar-bench")
    parser.add_argument("--only", default="", help="workloads whose name contains this, "
                        "e.g. 'put 8 KiB' or 'fs'")
    parser.add_argument("--impl", action="append", default=[],
                        help="only this implementation (repeatable), e.g. 's3.py put'")
    args = parser.parse_args()
    sizes = Sizes(2, 8, 400, 300) if args.quick else Sizes(5, 24, 1500, 1000)
    if args.rounds:
        sizes.rounds = args.rounds
    sizes.only, sizes.impls = args.only, tuple(args.impl)
    results = Results()
    started = time.perf_counter()
    server = "none"
    if not args.only.startswith("fs"):
        with s3_target(args) as (target, server):
            asyncio.run(bench_s3(target, sizes, results))
    if not args.only or args.only.startswith("fs"):
        with tempfile.TemporaryDirectory(prefix="notar-bench-fs-", dir=os.getcwd()) as tmp:
            asyncio.run(bench_fs(Path(tmp), sizes, results))
    print(f"\nmachine: {platform.machine()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}, {platform.system()} {platform.release()}")
    print(f"server: {server}; fs on {os.getcwd()}")
    print(f"rounds: {sizes.rounds}; per round and implementation: {sizes.big} x 8 MiB, "
          f"{sizes.small} x 8 KiB, {sizes.fs} fs files; took {time.perf_counter() - started:.0f} s\n")
    print(table(results, ["raw, defaults", "raw, same settings", "plain write+fsync loop"]))


if __name__ == "__main__":
    main()
