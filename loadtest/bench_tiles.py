"""Tile reads benchmark (issue 18 items 4 and 5): `GET /log/tile/0/000` of `notar serve` (a full
8 KiB level-0 tile, fs store, fsync on) beside an aiohttp hello world answering the very same 8 KiB
at the same path, in one run; plus the same tile from a `notar serve` with `TILE_CACHE_MB=0`
(every read a `sendfile` of the directory store's file), and inclusion proofs over HTTP
(`GET /v1/proofs/inclusion` at random indices) for comparison.

The load comes from wrk, an independent C client process (one thread, `--connections` at a time,
`--seconds` each run: bounded in time, and each run killed after `--seconds` + 30 s): an asyncio
client is about as slow as the servers it would measure. Every round runs every contestant once,
in an order rotating from round to round, so that a noisy machine slows all of them alike;
figures are medians over rounds, each ratio the median of same-round ratios. The CPU each server
used during its run is read from /proc. Loopback only.

    .venv/bin/python -m loadtest.bench_tiles                 # 5 rounds of 5 s per contestant
    .venv/bin/python -m loadtest.bench_tiles --quick         # 2 rounds of 2 s
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import aiohttp
from aiohttp import web

from loadtest.bench_api_measure import published_size
from loadtest.bench_api_report import machine
from loadtest.loadgen import check_loopback, random_digests
from loadtest.servers import (
    REPO,
    Server,
    free_port,
    notar_server,
    process_tree,
    start_server,
    tree_cpu_seconds,
)
from services.sdk import NotarClient

TILE = "/log/tile/0/000"
TILE_BYTES = 8192
GOAL = 0.8  # tile reads ÷ hello world (issue 18)
NOTAR, HELLO = "notar tile", "hello world, same 8 KiB"
SENDFILE, PROOFS = "notar tile, TILE_CACHE_MB=0", "notar proofs"
CONTESTANTS = (NOTAR, HELLO, SENDFILE, PROOFS)
MAX_RUN_EXTRA_S = 30


@dataclass(frozen=True)
class WrkRun:
    """What one wrk run measured: requests/s, latency quantiles (ms), and failures."""

    rate: float
    p50_ms: float
    p99_ms: float
    errors: int
    server_cores: float = 0.0


@dataclass
class Results:
    rounds: list[dict[str, WrkRun]] = field(default_factory=list)
    tree_size: int = 0
    workers: int = 1  # WORKERS of the notar servers


_UNITS_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([0-9.]+)(us|ms|s|m)", text)
    if m is None:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(m.group(1)) * _UNITS_MS[m.group(2)]


def parse_wrk(out: str) -> WrkRun:
    """wrk's report (with `--latency`): Requests/sec, the 50 % and 99 % latencies, and the
    failed requests (socket errors and non-2xx/3xx answers)."""
    rate = re.search(r"^Requests/sec:\s+([0-9.]+)", out, re.M)
    p50 = re.search(r"^\s+50%\s+(\S+)", out, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M)
    if rate is None or p50 is None or p99 is None:
        raise ValueError(f"not a wrk --latency report:\n{out[-2000:]}")
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors += int(non2xx.group(1)) if non2xx else 0
    return WrkRun(float(rate.group(1)), _ms(p50.group(1)), _ms(p99.group(1)), errors)


def proofs_script(directory: Path, size: int, seed: int) -> Path:
    """A wrk script asking inclusion proofs at random indices of the tree of `size`."""
    path = directory / f"proofs-{seed}.lua"
    path.write_text(
        f"math.randomseed({seed})\n"
        "request = function()\n"
        f"  local i = math.random(0, {size - 1})\n"
        f'  return wrk.format("GET", "/v1/proofs/inclusion?index=" .. i .. "&size={size}")\n'
        "end\n"
    )
    return path


def wrk(url: str, *, connections: int, seconds: int, script: Path | None = None) -> str:
    check_loopback(url)
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", url]
    if script is not None:
        command[1:1] = ["-s", str(script)]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=seconds + MAX_RUN_EXTRA_S, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"wrk failed ({done.returncode}): {done.stderr.strip()[-1000:]}")
    return done.stdout


def measured(url: str, pid: int, *, connections: int, seconds: int, script: Path | None = None) -> WrkRun:
    pids = process_tree(pid)  # a notar serve's workers too
    before = tree_cpu_seconds(pids)
    run = parse_wrk(wrk(url, connections=connections, seconds=seconds, script=script))
    cores = (tree_cpu_seconds(pids) - before) / seconds
    return WrkRun(run.rate, run.p50_ms, run.p99_ms, run.errors, cores)


def ratio(res: Results, a: str, b: str) -> float:
    """The median over rounds of `a`'s rate ÷ `b`'s rate in the same round."""
    return statistics.median(r[a].rate / r[b].rate for r in res.rounds if r[b].rate > 0)


def cpu_us(run: WrkRun) -> float:
    """The server's CPU per answer, in µs: on a shared machine, steadier than answers per second."""
    return run.server_cores / run.rate * 1e6 if run.rate > 0 else 0.0


def cpu_ratio(res: Results, a: str, b: str) -> str:
    """The median over rounds of `a`'s CPU per answer ÷ `b`'s, as text ("n/a" without CPU)."""
    pairs = [(cpu_us(r[a]), cpu_us(r[b])) for r in res.rounds]
    ratios = [x / y for x, y in pairs if x > 0 and y > 0]
    return f"{statistics.median(ratios):.2f}×" if ratios else "n/a"


def load(path: Path) -> Results:
    """The results a run wrote with `--out`."""
    saved = json.loads(path.read_text())
    rounds = [{k: WrkRun(**v) for k, v in r.items()} for r in saved["rounds"]]
    return Results(rounds=rounds, tree_size=saved["tree_size"], workers=saved.get("workers", 1))


def median_of(res: Results, name: str, value: Callable[[WrkRun], float]) -> float:
    return statistics.median(value(r[name]) for r in res.rounds)


def report(res: Results, *, seconds: int, connections: int) -> str:
    lines = [
        f"Machine: {machine()}. wrk -t1 -c{connections}, {seconds} s a run, {len(res.rounds)} rounds; "
        f"the log holds {res.tree_size:,} entries; notar serve with WORKERS={res.workers} (its CPU: "
        "every process); figures are medians over rounds.",
        "",
        "| contestant | reads/s | p50 | p99 | server cores | server CPU µs per read | errors (all rounds) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name in CONTESTANTS:
        unit = "proofs/s" if name == PROOFS else "reads/s"
        lines.append(
            f"| {name} | {median_of(res, name, lambda r: r.rate):,.0f} {unit} "
            f"| {median_of(res, name, lambda r: r.p50_ms):.2f} ms "
            f"| {median_of(res, name, lambda r: r.p99_ms):.2f} ms "
            f"| {median_of(res, name, lambda r: r.server_cores):.2f} "
            f"| {median_of(res, name, cpu_us):.1f} "
            f"| {sum(r[name].errors for r in res.rounds)} |"
        )
    tile = ratio(res, NOTAR, HELLO)
    lines += [
        "",
        "| ratio (median of same-round ratios) | value | goal | met |",
        "| --- | ---: | ---: | --- |",
        f"| notar tile ÷ hello world | {tile:.3f}× | ≥ {GOAL}× | {'yes' if tile >= GOAL else '**no**'} |",
        f"| notar tile, TILE_CACHE_MB=0 (sendfile) ÷ hello world | {ratio(res, SENDFILE, HELLO):.2f}× | | |",
        f"| inclusion proofs ÷ hello world's tile reads | {ratio(res, PROOFS, HELLO):.2f}× | | |",
        f"| notar tile ÷ inclusion proofs | {ratio(res, NOTAR, PROOFS):.2f}× | | |",
        f"| hello world's CPU per read ÷ notar tile's (the rate ratio if both had a core) "
        f"| {cpu_ratio(res, HELLO, NOTAR)} | | |",
    ]
    return "\n".join(lines)


# ------------------------------------------------------------------------------ the servers


def hello_app(data: bytes) -> web.Application:
    """The reference: aiohttp answering the tile's bytes at its path, nothing else."""

    async def tile(request: web.Request) -> web.Response:
        return web.Response(body=data, content_type="application/octet-stream")

    async def ready(request: web.Request) -> web.Response:
        return web.Response(text="ready\n")

    app = web.Application()
    app.router.add_get(TILE, tile)
    app.router.add_get("/readyz", ready)
    return app


@contextmanager
def hello_server(root: Path, tile: bytes) -> Iterator[Server]:
    (root / "tile").write_bytes(tile)
    port = free_port()
    command = [sys.executable, "-m", "loadtest.bench_tiles", "hello", "--port", str(port),
               "--file", str(root / "tile")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    server = start_server("hello", command, f"http://127.0.0.1:{port}", env, root)
    try:
        yield server
    finally:
        server.stop()


async def fill(url: str, key: str, entries: int) -> tuple[int, bytes]:
    """Notarize `entries` digests; once published: the tree size and the tile's bytes."""
    async with NotarClient(url, key) as client:
        for start in range(0, entries, 10_000):
            await client.notarize(random_digests(min(10_000, entries - start)))
    async with aiohttp.ClientSession() as session:
        for _ in range(600):
            size = await published_size(session, url)
            if size >= entries:
                async with session.get(url + TILE) as r:
                    return size, await r.read()
            await asyncio.sleep(0.1)
    raise SystemExit(f"{url}: the log did not publish {entries} entries within 60 s")


def run(args: argparse.Namespace) -> Results:
    res = Results(workers=args.workers)
    with tempfile.TemporaryDirectory(prefix="notar-bench-tiles-") as tmp, ExitStack() as stack:
        root = Path(tmp)
        workers = {"NOTAR_WORKERS": str(args.workers)}
        notar, key = stack.enter_context(notar_server("notar", root, env=workers))
        uncached, other = stack.enter_context(
            notar_server("notar-sendfile", root, env={**workers, "NOTAR_TILE_CACHE_MB": "0"})
        )
        res.tree_size, tile = asyncio.run(fill(notar.url, key, args.entries))
        _, same_shape = asyncio.run(fill(uncached.url, other, 256))
        if len(tile) != TILE_BYTES or len(same_shape) != TILE_BYTES:
            raise SystemExit(f"the level-0 tile is {len(tile)} bytes, not {TILE_BYTES}")
        hello = stack.enter_context(hello_server(root, tile))
        script = proofs_script(root, res.tree_size, args.seed)
        targets: dict[str, tuple[str, Server, Path | None]] = {
            NOTAR: (notar.url + TILE, notar, None),
            HELLO: (hello.url + TILE, hello, None),
            SENDFILE: (uncached.url + TILE, uncached, None),
            PROOFS: (notar.url, notar, script),
        }
        for url, _, scripted in targets.values():  # warm up: caches, connections, the JIT-less loop
            wrk(url, connections=args.connections, seconds=1, script=scripted)
        for rnd in range(args.rounds):
            order = CONTESTANTS[rnd % len(CONTESTANTS):] + CONTESTANTS[: rnd % len(CONTESTANTS)]
            this: dict[str, WrkRun] = {}
            for name in order:
                url, server, scripted = targets[name]
                this[name] = measured(url, server.pid, connections=args.connections, seconds=args.seconds,
                                      script=scripted)
                print(f"round {rnd + 1} {name}: {this[name].rate:,.0f}/s p99 {this[name].p99_ms:.1f} ms",
                      file=sys.stderr)
            res.rounds.append(this)
    return res


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m loadtest.bench_tiles", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command")
    h = sub.add_parser("hello", help="run the hello-world app (used by the benchmark itself)")
    h.add_argument("--port", type=int, required=True)
    h.add_argument("--file", type=Path, required=True)
    p.add_argument("--rounds", type=int, help="default 5 (--quick 2)")
    p.add_argument("--seconds", type=int, help="each run, in seconds (wrk -d); default 5 (--quick 2)")
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--workers", type=int, default=1,
                   help="WORKERS of the notar servers (default 1: one process, as the hello world)")
    p.add_argument("--entries", type=int, help="entries in the log proofs are asked of; default 100,000 "
                   "(--quick 20,000)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--quick", action="store_true", help="a fast look: fewer and shorter rounds")
    p.add_argument("--out", type=Path, help="also write the runs as JSON")
    p.add_argument("--report", type=Path, metavar="JSON", help="only print the report of a run's --out")
    ns = p.parse_args(argv)
    for name, (full, quick) in {"rounds": (5, 2), "seconds": (5, 2), "entries": (100_000, 20_000)}.items():
        if getattr(ns, name) is None:
            setattr(ns, name, quick if ns.quick else full)
    if not (1 <= ns.rounds <= 50 and 1 <= ns.seconds <= 120 and 256 <= ns.entries <= 10_000_000):
        p.error("need 1-50 rounds, 1-120 seconds a run and 256-10,000,000 entries")
    return ns


def main(argv: Sequence[str] | None = None) -> int:
    ns = parse_args(sys.argv[1:] if argv is None else argv)
    if ns.command == "hello":
        web.run_app(hello_app(ns.file.read_bytes()), host="127.0.0.1", port=ns.port, print=None)
        return 0
    if ns.report is not None:
        print(report(load(ns.report), seconds=ns.seconds, connections=ns.connections))
        return 0
    if shutil.which("wrk") is None:
        raise SystemExit("the tiles benchmark needs wrk (scripts/install --test installs it)")
    res = run(ns)
    print(report(res, seconds=ns.seconds, connections=ns.connections))
    if ns.out:
        ns.out.write_text(json.dumps({"tree_size": res.tree_size,
                                      "rounds": [{k: asdict(v) for k, v in r.items()} for r in res.rounds]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
