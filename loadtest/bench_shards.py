"""Scale figures for shards (issue 17 item 9): entries/s and CPU per entry with K shards, in one
process (`notar serve --shards K`, fs store, fsync on) and through the loopback cluster (K shard
anchors, two ingest, two verify behind haproxy, on SeaweedFS: loadtest/cluster.py), on this machine.

Every deployment runs for the whole benchmark; each round loads each one in turn (an order
rotating from round to round, so a noisy machine slows all of them alike) with the same bounded
closed loop of bulk requests (fresh digests, `--per-request` each, `--clients` at a time). The CPU
every process of a deployment spent (notar's; and haproxy's and SeaweedFS's, for the cluster) is
read from /proc: CPU per entry does not depend on the wall clock as much as entries/s does. Each
figure is the median over rounds, each ratio the median of same-round ratios against K = 1 of the
same mode. The projection divides cores by the measured CPU per entry of all processes (the load
generator excluded): entries/s that 16 and 64 such cores would give if shards scale as the ratios
measured here say, and the cores 100,000 entries/s would take. Sampled receipts are verified offline.

    .venv/bin/python -m loadtest.bench_shards --shards 1,2,4 --rounds 5 --seconds 10
    .venv/bin/python -m loadtest.bench_shards --shards 1 --modes in-process --quick
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import aiohttp

from loadtest.bench_api_measure import verify_samples
from loadtest.bench_api_report import machine
from loadtest.cluster import LoopbackCluster, running_cluster
from loadtest.loadgen import ReceiptSampler, closed_loop, notar_client, notarize_op
from loadtest.reliability.cluster import S3Bucket
from loadtest.servers import Server, cpu_seconds, notar_server, process_tree
from tests.seaweed import S3Target, ensure_bucket, start_seaweed

MODES = ("in-process", "cluster")
TARGET = 100_000  # entries/s, the seed's target
PROJECTED_CORES = (16, 64)


@dataclass
class Deployment:
    """One running deployment: where to send load and which processes' CPU counts."""

    mode: str
    shards: int
    url: str
    api_key: str
    notar_pids: Callable[[], list[int]]  # the notar processes (a restarted pod: its new pid)
    other_pids: Callable[[], list[int]] = list  # haproxy, SeaweedFS

    @property
    def name(self) -> str:
        return f"{self.mode} K={self.shards}"


@dataclass
class Run:
    """One bounded load of one deployment in one round."""

    entries_per_s: float
    notar_cpu_us: float  # CPU µs per entry, notar's processes
    all_cpu_us: float  # CPU µs per entry, every process of the deployment
    errors: int


@dataclass
class Results:
    runs: dict[str, list[Run]] = field(default_factory=dict)  # deployment name → run per round
    rounds: list[dict[str, Run]] = field(default_factory=list)
    verified: int = 0


async def load_once(d: Deployment, *, seconds: float, clients: int, per_request: int,
                    sampler: ReceiptSampler) -> Run:
    notar, other = d.notar_pids(), d.other_pids()
    before = {p: cpu_seconds(p) for p in notar + other}
    async with notar_client(d.url, d.api_key, connections=clients) as client:
        result = await closed_loop(
            notarize_op(client, per_request=per_request, sampler=sampler),
            concurrency=clients,
            max_requests=100_000,
            max_seconds=seconds,
        )
    used = {p: cpu_seconds(p) - b for p, b in before.items()}
    entries = max(result.units, 1)
    return Run(
        result.unit_rate,
        sum(used[p] for p in notar) / entries * 1e6,
        sum(used.values()) / entries * 1e6,
        result.errors,
    )


def notar_pids(c: LoopbackCluster) -> list[int]:
    return [pid for p in c.pods.pods if p.process is not None for pid in process_tree(p.process.pid)]


def other_pids(c: LoopbackCluster, weed_pid: int) -> list[int]:
    lb = c.balancer.process
    return [weed_pid] + ([lb.pid] if lb is not None else [])


def server_pids(server: Server) -> list[int]:
    return process_tree(server.pid)  # with its workers


@contextlib.contextmanager
def deployments(root: Path, modes: tuple[str, ...], shards: tuple[int, ...]) -> Iterator[list[Deployment]]:
    """Every deployment asked for, started, and stopped afterwards."""
    with contextlib.ExitStack() as stack:
        found: list[Deployment] = []
        for k in shards if "in-process" in modes else ():
            flags = ("--shards", str(k)) if k > 1 else ()
            server, key = stack.enter_context(notar_server(f"in-process K={k}", root, flags))
            found.append(Deployment("in-process", k, server.url, key, partial(server_pids, server)))
        if "cluster" in modes:
            weed = stack.enter_context(start_seaweed())
            target = S3Target(weed.endpoint, "bench", weed.access_key, weed.secret_key, weed.region)
            ensure_bucket(target)
            bucket = S3Bucket(target.endpoint, target.bucket, target.access_key, target.secret_key)
            for k in shards:
                workdir = root / f"cluster-{k}"
                workdir.mkdir()
                c = stack.enter_context(running_cluster(workdir, bucket, shards=k))
                found.append(Deployment("cluster", k, c.url, c.pods.api_keys["acme"], partial(notar_pids, c),
                                        partial(other_pids, c, weed.pid)))
        yield found


async def bench(ds: list[Deployment], *, rounds: int, seconds: float, clients: int,
                per_request: int) -> Results:
    res = Results()
    samplers = {d.name: ReceiptSampler(every=5, keep=20) for d in ds}
    for rnd in range(rounds):
        order = ds[rnd % len(ds):] + ds[: rnd % len(ds)]
        this: dict[str, Run] = {}
        for d in order:
            run = await load_once(d, seconds=seconds, clients=clients, per_request=per_request,
                                  sampler=samplers[d.name])
            this[d.name] = run
            res.runs.setdefault(d.name, []).append(run)
            print(f"round {rnd + 1} {d.name}: {run.entries_per_s:,.0f} entries/s, "
                  f"{run.all_cpu_us:.1f} CPU µs/entry, {run.errors} errors", file=sys.stderr)
        res.rounds.append(this)
    async with aiohttp.ClientSession() as session:
        for d in ds:
            async with session.get(d.url + "/v1/keys") as r:
                keys = await r.json()
            res.verified += verify_samples(samplers[d.name].samples, keys)
    return res


def ratio(res: Results, name: str, base: str, value: Callable[[Run], float]) -> float:
    """The median over rounds of value(name) ÷ value(base) in the same round."""
    return statistics.median(value(r[name]) / max(value(r[base]), 1e-12) for r in res.rounds)


def report(res: Results, ds: list[Deployment], *, seconds: float, clients: int, per_request: int) -> str:
    out = [
        f"Machine: {machine()}. Each run: closed loop, {clients} clients x {per_request:,} fresh digests "
        f"per request, {seconds:g} s; {len(res.rounds)} rounds; {res.verified} sampled receipts "
        "verified offline.",
        "",
        "| deployment | entries/s (median) | × K=1 (same-round) | notar CPU µs/entry | all CPU µs/entry "
        "| × K=1 | errors | entries/s on " + " / ".join(f"{n} cores" for n in PROJECTED_CORES)
        + f" | cores for {TARGET:,}/s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for d in ds:
        runs = res.runs[d.name]
        base = f"{d.mode} K={min(x.shards for x in ds if x.mode == d.mode)}"
        eps = statistics.median(r.entries_per_s for r in runs)
        notar_us = statistics.median(r.notar_cpu_us for r in runs)
        all_us = statistics.median(r.all_cpu_us for r in runs)
        projected = " / ".join(f"{n * 1e6 / all_us:,.0f}" for n in PROJECTED_CORES)
        out.append(
            f"| {d.name} | {eps:,.0f} | {ratio(res, d.name, base, lambda r: r.entries_per_s):.3f} "
            f"| {notar_us:.1f} | {all_us:.1f} | {ratio(res, d.name, base, lambda r: r.all_cpu_us):.3f} "
            f"| {sum(r.errors for r in runs)} | {projected} | {TARGET * all_us / 1e6:.1f} |"
        )
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m loadtest.bench_shards", description=__doc__.split("\n\n")[0])
    p.add_argument("--shards", default="1,2,4", help="shard counts, comma-separated (default 1,2,4)")
    p.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--seconds", type=float, default=10.0, help="each run's bound in seconds")
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--per-request", type=int, default=1000)
    p.add_argument("--quick", action="store_true", help="1 round of 2 s with 2 clients x 100 digests")
    p.add_argument("--out", type=Path, help="write the results as JSON to this file")
    ns = p.parse_args(argv)
    if ns.quick:
        ns.rounds, ns.seconds, ns.clients, ns.per_request = 1, 2.0, 2, 100
    try:
        shards = tuple(sorted({int(k) for k in ns.shards.split(",")}))
    except ValueError:
        p.error(f"--shards: comma-separated whole numbers, not {ns.shards!r}")
    if not shards or shards[0] < 1 or ns.rounds < 1 or ns.seconds <= 0:
        p.error("--shards, --rounds and --seconds must be positive")
    sizes = {"seconds": ns.seconds, "clients": ns.clients, "per_request": ns.per_request}
    with tempfile.TemporaryDirectory(prefix="notar-bench-shards-") as tmp, \
            deployments(Path(tmp), tuple(ns.modes), shards) as ds:
        res = asyncio.run(bench(ds, rounds=ns.rounds, **sizes))
    print(report(res, ds, **sizes))
    if ns.out:
        ns.out.write_text(json.dumps({"rounds": [{k: vars(r) for k, r in rnd.items()} for rnd in res.rounds],
                                      "verified": res.verified, **sizes}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
