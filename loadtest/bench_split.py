"""Where a `notar serve`'s CPU goes under load: per process (the anchor, its workers), per
request or digest, with the batches the sequencer made, for single-digest or bulk requests; and,
with `--base TREE`, a change against its base in alternating rounds.

The load is wrk (an independent C process, 2 threads) posting fresh digests to `POST
/v1/digests`: one per request (`--mode single`), or `--per-request` of them (`--mode bulk`)
asking for default or compact answers (`--answers`). Every server is a subprocess on 127.0.0.1
with its own DATA_DIR and tenant, default settings (WORKERS=auto, fsync on) unless `--set
NAME=VALUE` says otherwise, warmed up for 2 s before each measured run. CPU is read from /proc
for the server's process tree, user and system apart; batches from its `notar_batches` counter.
Only answered digests count (a 503 pushback is counted apart). Figures are medians over rounds,
ratios medians of same-round ratios. Bounded: rounds × trees × (2 + `--seconds`) s.

    .venv/bin/python -m loadtest.bench_split                               # single, 128 connections
    .venv/bin/python -m loadtest.bench_split --mode bulk --connections 8   # 1,000 digests a request
    .venv/bin/python -m loadtest.bench_split --mode bulk --connections 8 --base ../main-at-X
    .venv/bin/python -m loadtest.bench_split --set NOTAR_BATCH_MIN_MS=10
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from loadtest.bench_single import LUA_THREADS
from loadtest.servers import REPO, Server, notar_server, process_tree

LUA = LUA_THREADS + r"""
local per = tonumber(os.getenv("BENCH_PER") or "1")
local accept = os.getenv("BENCH_ACCEPT") or "application/json"
function init(args)
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Authorization"] = "Bearer " .. key
  wrk.headers["Accept"] = accept
end
function request()
  counter = counter + 1
  local parts = {}
  for i = 1, per do
    local hex = string.format("%06x%02x%010x%06x", nonce, id, counter, i)
    parts[i] = '"sha256:' .. hex .. string.rep("0", 64 - #hex) .. '"'
  end
  return wrk.format(nil, "/v1/digests", nil, '{"digests":[' .. table.concat(parts, ",") .. ']}')
end
ok, busy, bad = 0, 0, 0
function response(status, headers, body)
  if status == 200 then ok = ok + 1 elseif status == 503 then busy = busy + 1 else bad = bad + 1 end
end
function done(summary, latency, requests)
  local o, b, x = 0, 0, 0
  for _, t in ipairs(threads) do o = o + t:get("ok"); b = b + t:get("busy"); x = x + t:get("bad") end
  local e = summary.errors
  io.write(string.format(
    'RESULT {"ok":%d,"busy":%d,"bad":%d,"errors":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d}\n',
    o, b, x, e.connect + e.read + e.write + e.timeout, summary.duration,
    latency:percentile(50), latency:percentile(99)))
end
"""

ACCEPT = {"default": "application/json", "compact": "application/vnd.notar.batch+json"}
_NONCES = iter(range(int.from_bytes(os.urandom(2), "big") << 8, 1 << 24))


@dataclass(frozen=True)
class Run:
    tree: str
    digests_per_s: float
    p50_ms: float
    p99_ms: float
    busy: int  # 503 pushback answers, not counted as throughput
    failed: int  # any other answer, or a socket error
    per_batch: float  # digests per batch
    parent_us: float  # the anchor's CPU per digest (user + system)
    workers_us: float  # the workers' together
    system_us: float  # of which in the kernel, every process


def wrk(
    url: str, key: str, script: Path, *, connections: int, seconds: int, per: int, accept: str
) -> dict[str, int]:
    env = {**os.environ, "BENCH_API_KEY": key, "BENCH_PER": str(per), "BENCH_ACCEPT": accept,
           "BENCH_NONCE": str(next(_NONCES))}
    out = subprocess.run(
        ["wrk", "-t", "2", "-c", str(connections), "-d", f"{seconds}s", "--timeout", "10s",
         "-s", str(script), url],
        env=env, capture_output=True, text=True, timeout=seconds + 60, check=False,
    )
    for line in out.stdout.splitlines():
        if line.startswith("RESULT "):
            result: dict[str, int] = json.loads(line.removeprefix("RESULT "))
            return result
    raise SystemExit(f"wrk gave no result ({out.returncode}): {out.stdout[-1000:]} {out.stderr[-1000:]}")


def cpu(pid: int) -> tuple[float, float]:
    """User and system CPU seconds of process `pid`, from /proc (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
    except OSError:
        return 0.0, 0.0
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def batches(url: str) -> float:
    """The server's `notar_batches` counter (its /metrics: the anchor's, through a worker)."""
    with urllib.request.urlopen(url + "/metrics", timeout=10) as r:  # loopback only
        text = r.read().decode()
    return sum(float(v) for v in re.findall(r"^notar_batches(?:_total)?(?:\{[^}]*\})? (\S+)$", text, re.M))


def measure(tree: str, server: Server, key: str, script: Path, args: argparse.Namespace) -> Run:
    per = args.per_request if args.mode == "bulk" else 1
    accept = ACCEPT[args.answers]
    wrk(server.url, key, script, connections=args.connections, seconds=2, per=per, accept=accept)  # warm-up
    pids = process_tree(server.pid)
    before, batched = {p: cpu(p) for p in pids}, batches(server.url)
    r = wrk(server.url, key, script, connections=args.connections, seconds=args.seconds, per=per,
            accept=accept)
    used = {p: tuple(a - b for a, b in zip(cpu(p), before[p], strict=True)) for p in pids}
    batched = batches(server.url) - batched
    digests = max(1, r["ok"] * per)
    us = 1e6 / digests
    return Run(
        tree=tree,
        digests_per_s=r["ok"] * per / (r["duration_us"] / 1e6),
        p50_ms=r["p50_us"] / 1e3,
        p99_ms=r["p99_us"] / 1e3,
        busy=r["busy"],
        failed=r["bad"] + r["errors"],
        per_batch=digests / max(1.0, batched),
        parent_us=sum(used[pids[0]]) * us,
        workers_us=sum(sum(used[p]) for p in pids[1:]) * us,
        system_us=sum(u[1] for u in used.values()) * us,
    )


def line(run: Run, unit: str) -> str:
    return (f"{run.tree:>5} {run.digests_per_s:10,.0f} {unit}/s  p50 {run.p50_ms:7.1f} ms"
            f"  p99 {run.p99_ms:7.1f} ms  503 {run.busy}  failed {run.failed}  {run.per_batch:6.1f} per batch"
            f"  CPU µs per {unit[:-1]}: anchor {run.parent_us:6.1f}, workers {run.workers_us:6.1f},"
            f" of which kernel {run.system_us:5.1f}")


def report(runs: list[list[Run]], unit: str) -> str:
    """Medians per tree over rounds, and with two trees the median of same-round ratios."""
    trees = [r.tree for r in runs[0]]
    one = unit[:-1]
    out = [f"| tree | {unit}/s | p50 ms | p99 ms | per batch | anchor µs/{one} | workers µs/{one} "
           "| kernel µs | 503s | failed |",
           "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for i, tree in enumerate(trees):
        rs = [rnd[i] for rnd in runs]

        def med(field: str, rs: list[Run] = rs) -> float:
            return statistics.median(float(getattr(r, field)) for r in rs)
        out.append(f"| {tree} | {med('digests_per_s'):,.0f} | {med('p50_ms'):.1f} | {med('p99_ms'):.1f} "
                   f"| {med('per_batch'):.1f} | {med('parent_us'):.1f} | {med('workers_us'):.1f} "
                   f"| {med('system_us'):.1f} | {sum(r.busy for r in rs)} | {sum(r.failed for r in rs)} |")
    if len(trees) == 2:
        ratios = [rnd[1].digests_per_s / rnd[0].digests_per_s for rnd in runs if rnd[0].digests_per_s]
        shown = ", ".join(f"{x:.2f}" for x in ratios)
        out.append(f"\n{trees[1]} ÷ {trees[0]}, {unit}/s: {shown}; median {statistics.median(ratios):.3f}")
    return "\n".join(out)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m loadtest.bench_split", description=__doc__.split("\n\n")[0])
    p.add_argument("--mode", choices=("single", "bulk"), default="single")
    p.add_argument("--connections", type=int, default=128)
    p.add_argument("--per-request", type=int, default=1000, help="digests per bulk request (default 1,000)")
    p.add_argument("--answers", choices=tuple(ACCEPT), default="default", help="what bulk requests ask for")
    p.add_argument("--seconds", type=int, default=8, help="each measured run (default 8)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--base", type=Path, help="also run the server from this checkout, alternating")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                   help="a setting of every server, e.g. NOTAR_BATCH_MIN_MS=10")
    ns = p.parse_args(argv)
    if not (1 <= ns.rounds <= 20 and 1 <= ns.seconds <= 120 and 1 <= ns.connections <= 1024
            and 1 <= ns.per_request <= 10_000):
        p.error("need 1-20 rounds, 1-120 seconds, 1-1,024 connections and 1-10,000 digests a request")
    if any("=" not in s for s in ns.set):
        p.error("--set takes NAME=VALUE")
    return ns


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is missing: scripts/install --test installs it (apt-get install -y wrk)")
    settings = dict(s.split("=", 1) for s in args.set)
    trees = [("head", REPO)] if args.base is None else [("base", args.base.resolve()), ("head", REPO)]
    unit = "digests" if args.mode == "bulk" else "requests"
    root = Path(tempfile.mkdtemp(prefix="notar-bench-split-"))
    script = root / "split.lua"
    script.write_text(LUA)
    runs: list[list[Run]] = []
    try:
        for rnd in range(args.rounds):
            order = trees if rnd % 2 == 0 else trees[::-1]
            this: dict[str, Run] = {}
            for name, tree in order:
                path = os.pathsep.join([str(tree), os.environ.get("PYTHONPATH", "")])
                env = {**settings, "PYTHONPATH": path}
                with notar_server(f"{name}-{rnd}", root, env=env) as (server, key):
                    this[name] = measure(name, server, key, script, args)
                print(f"round {rnd + 1} {line(this[name], unit)}", flush=True)
            runs.append([this[name] for name, _ in trees])
    finally:
        with contextlib.suppress(OSError):
            shutil.rmtree(root)
    print(report(runs, unit))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
