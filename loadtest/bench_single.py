"""Single-digest benchmark: `wrk` (Debian's, an independent client process) posting one fresh digest
per request to `notar serve` with WORKERS=1 and WORKERS=2, beside the aiohttp hello world of
loadtest/servers.py answering the same POST with a constant body, in interleaved rounds of one run.

Each round runs every server twice: 128 connections (requests/s and p99: the throughput goal,
≥ 0.33 × hello world with p99 < 500 ms) and 10 connections (p50: the latency goal, < 20 ms).
The notar servers run with fsync on, on the embedded store, each in its own DATA_DIR, with
BATCH_MS at its default (100) and at `--small-batch-ms` (5): the sequencer of this revision
waits BATCH_MS after a batch's first entry, so at 128 connections each request waits about that
long. Figures are medians over rounds; each ratio is the median of same-round ratios. Every
request's answer is counted: anything but 200 is reported as an error, never as throughput.
Loopback only; bounded by rounds × servers × 2 × `--seconds`.

    .venv/bin/python -m loadtest.bench_single                 # 3 rounds of 10 s
    .venv/bin/python -m loadtest.bench_single --rounds 5 --seconds 15

`--base TREE` runs each notar server twice per round, from TREE (another checkout, e.g. a
detached worktree of main: its packages first on PYTHONPATH, this tree's interpreter) and from
this tree, so that a change is measured against its base in the same run; `--workers 2`
keeps only the WORKERS=2 servers. `--cprofile FILE` benchmarks nothing: one `notar serve`
(WORKERS=1, BATCH_MS=`--small-batch-ms`) runs with every thread under cProfile
(loadtest/profiled.py) through one wrk run of each connection count, and its hottest functions
are printed in µs of CPU per request (cProfile's own cost included: compare shares, not totals);
with `--base`, the server is the base tree's.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from loadtest.profiled import top
from loadtest.servers import REPO, Server, hello_server, notar_server, process_tree, tree_cpu_seconds

LUA_THREADS = r"""
-- fresh digests: thread id, a counter and the run's nonce, so no two requests repeat a digest
local counter = 0
local threads = {}
local key = os.getenv("BENCH_API_KEY") or ""
local nonce = tonumber(os.getenv("BENCH_NONCE") or "0")
function setup(thread)
  thread:set("id", #threads + 1)
  table.insert(threads, thread)
end
"""
"""The part of a wrk script that numbers its threads and reads the API key and nonce (shared
with loadtest.bench_split)."""

LUA = LUA_THREADS + r"""
function init(args)
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Authorization"] = "Bearer " .. key
end
function request()
  counter = counter + 1
  local hex = string.format("%08x%08x%016x", nonce, id, counter)
  local body = '{"digests":["sha256:' .. hex .. string.rep("0", 64 - #hex) .. '"]}'
  return wrk.format(nil, "/v1/digests", nil, body)
end
non200 = 0  -- a global: done() reads it from each thread
function response(status, headers, body)
  if status ~= 200 then non200 = non200 + 1 end
end
function done(summary, latency, requests)
  local bad = 0
  for _, t in ipairs(threads) do bad = bad + t:get("non200") end
  local e = summary.errors
  io.write(string.format(
    'RESULT {"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,"max_us":%d,"non200":%d,' ..
    '"connect":%d,"read":%d,"write":%d,"timeout":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), latency.max,
    bad, e.connect, e.read, e.write, e.timeout))
end
"""


NONCES = itertools.count(int.from_bytes(os.urandom(3), "big") << 4)  # a fresh prefix per wrk run


@dataclass
class Run:
    server: str
    connections: int
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    cpu_s: float


def wrk(url: str, key: str, script: Path, *, connections: int, seconds: int) -> dict[str, int]:
    out = subprocess.run(
        ["wrk", "-t", "2", "-c", str(connections), "-d", f"{seconds}s", "--timeout", "10s", "-s", str(script),
         url],
        env={**os.environ, "BENCH_API_KEY": key, "BENCH_NONCE": str(next(NONCES))},
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=False,
    )
    for line in out.stdout.splitlines():
        if line.startswith("RESULT "):
            result: dict[str, int] = json.loads(line.removeprefix("RESULT "))
            return result
    raise SystemExit(f"wrk gave no result ({out.returncode}): {out.stdout[-2000:]} {out.stderr[-2000:]}")


def measure(name: str, server: Server, key: str, script: Path, connections: int, seconds: int) -> Run:
    pids = process_tree(server.pid)  # the server and its workers
    cpu = tree_cpu_seconds(pids)
    r = wrk(server.url, key, script, connections=connections, seconds=seconds)
    cpu = tree_cpu_seconds(pids) - cpu
    errors = r["non200"] + r["connect"] + r["read"] + r["write"] + r["timeout"]
    good = r["requests"] - r["non200"]
    rps = good / (r["duration_us"] / 1e6)
    return Run(name, connections, rps, r["p50_us"] / 1e3, r["p99_us"] / 1e3, errors, cpu)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=int, default=10, help="per wrk run")
    p.add_argument("--small-batch-ms", type=int, default=5)
    p.add_argument("--connections", type=int, nargs=2, default=(128, 10), metavar=("MANY", "FEW"))
    p.add_argument("--workers", type=int, nargs="+", default=(1, 2), help="WORKERS of the notar servers")
    p.add_argument("--base", type=Path, help="also run every notar server from this checkout")
    p.add_argument("--cprofile", type=Path, help="profile one notar server instead (see above)")
    args = p.parse_args(argv)
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is missing: scripts/install --test installs it (apt-get install -y wrk)")
    root = Path(tempfile.mkdtemp(prefix="notar-bench-single-"))
    script = root / "single.lua"
    script.write_text(LUA)
    if args.cprofile is not None:
        try:
            return profile(args, root, script)
        finally:
            shutil.rmtree(root, ignore_errors=True)
    # (workers, batch_ms or None for the default), each becoming NOTAR_WORKERS / NOTAR_BATCH_MS
    settings: list[tuple[int, int | None]] = [(w, None) for w in args.workers]
    settings += [(w, args.small_batch_ms) for w in args.workers]
    trees: list[tuple[str, dict[str, str]]] = [("", {})]
    if args.base is not None:
        base = str(args.base.resolve())
        trees = [("main ", {"PYTHONPATH": os.pathsep.join([base, os.environ.get("PYTHONPATH", "")])}),
                 ("head ", {"PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])})]
    contestants = [
        (f"{tree}notar W={workers}" + (f" B={batch_ms}" if batch_ms is not None else ""),
         {"NOTAR_WORKERS": str(workers), **({} if batch_ms is None else {"NOTAR_BATCH_MS": str(batch_ms)}),
          **tree_env})
        for workers, batch_ms in settings
        for tree, tree_env in trees
    ]
    runs: list[tuple[int, Run]] = []
    try:
        with contextlib.ExitStack() as stack:
            servers: list[tuple[str, Server, str]] = [("hello", stack.enter_context(hello_server(root)), "")]
            for name, env in contestants:
                server, key = stack.enter_context(notar_server(name.replace("=", ""), root, env=env))
                servers.append((name, server, key))
            for r in range(args.rounds):
                order = servers[r % len(servers) :] + servers[: r % len(servers)]
                for name, server, key in order:
                    for c in args.connections:
                        run = measure(name, server, key, script, c, args.seconds)
                        runs.append((r, run))
                        print(
                            f"round {r + 1} {name:>16} c={c:<3} {run.rps:8.0f} req/s"
                            f"  p50 {run.p50_ms:7.1f} ms  p99 {run.p99_ms:7.1f} ms"
                            f"  errors {run.errors}  cpu {run.cpu_s:5.1f} s",
                            flush=True,
                        )
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(report(runs, [n for n, _ in [("hello", {}), *contestants]], args))
    return 0


def profile(args: argparse.Namespace, root: Path, script: Path) -> int:
    """`--cprofile`: one WORKERS=1 server under cProfile through one wrk run per connection count."""
    env = {"NOTAR_WORKERS": "1", "NOTAR_BATCH_MS": str(args.small_batch_ms)}
    if args.base is not None:  # the base tree's server (its packages first on the path)
        env["PYTHONPATH"] = os.pathsep.join([str(args.base.resolve()), os.environ.get("PYTHONPATH", "")])
    served = 0
    with notar_server("notar-profiled", root, env=env, cprofile=args.cprofile) as (server, key):
        for c in args.connections:
            run = measure("profiled", server, key, script, c, args.seconds)
            served += round(run.rps * args.seconds)
            each = run.cpu_s / max(1, run.rps * args.seconds) * 1e6
            print(f"profiled c={c}: {run.rps:.0f} req/s, CPU {each:.0f} µs/request", flush=True)
    print(f"cProfile of the server, every thread ({args.cprofile}):")
    print(top(str(args.cprofile), 40, per=served))
    return 0


def report(runs: list[tuple[int, Run]], names: list[str], args: argparse.Namespace) -> str:
    many, few = args.connections
    lines = [
        f"single digest, wrk -t2, {args.rounds} rounds of {args.seconds} s, medians; "
        f"{platform.node()} {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"load {os.getloadavg()[0]:.1f}",
        "",
        f"| server | req/s c={many} | ratio to hello | p99 c={many} (ms) | p50 c={few} (ms) | req/s c={few} "
        f"| errors | CPU s per 1k req c={many} |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]

    def of(name: str, c: int) -> list[Run]:
        return [run for _, run in runs if run.server == name and run.connections == c]

    for name in names:
        m, f = of(name, many), of(name, few)
        ratios = [
            run.rps / hello.rps
            for r, run in runs
            if run.server == name and run.connections == many
            for r2, hello in runs
            if r2 == r and hello.server == "hello" and hello.connections == many
        ]
        cpu = statistics.median(run.cpu_s / max(1, run.rps * args.seconds) * 1000 for run in m)
        lines.append(
            f"| {name} | {statistics.median(x.rps for x in m):,.0f} | {statistics.median(ratios):.2f} "
            f"| {statistics.median(x.p99_ms for x in m):.0f} | {statistics.median(x.p50_ms for x in f):.1f} "
            f"| {statistics.median(x.rps for x in f):,.0f} | {sum(x.errors for x in m + f)} | {cpu:.2f} |"
        )
    lines.append("")
    for name in names:  # with --base: each head server against its main twin, round by round
        if not name.startswith("head "):
            continue
        twin = "main " + name.removeprefix("head ")
        for c in (many, few):
            pairs = [(a, b) for r, a in runs if a.server == name and a.connections == c
                     for r2, b in runs if r2 == r and b.server == twin and b.connections == c]
            if pairs:
                rps = [a.rps / b.rps for a, b in pairs]
                lines.append(f"{name} ÷ main, c={c}: req/s ratios {', '.join(f'{x:.2f}' for x in rps)}, "
                             f"median {statistics.median(rps):.2f}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
