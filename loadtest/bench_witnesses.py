"""Receipt latency with two witnesses configured vs none (issue 16, BENCHMARKS.md "Witnesses").

Two `notar serve` (all roles, fsync on, ANCHORS=local, ANCHOR_INTERVAL_S=1), each with its own
DATA_DIR: `none` without WITNESSES, `witnessed` with two `notar witness serve` processes as its
WITNESSES (quorum 2, WITNESS_INTERVAL_S=1: the anchor submits a checkpoint every second, the
witnesses fsync what they cosign). In interleaved rounds, in an order alternating from round to
round, each server gets the same closed-loop load through the SDK: `single` (one digest per
request) and `batch` (1,000 digests per request); the latency is request sent → every receipt
received and parsed. Figures are medians over rounds of each round's p50 and p99. After the run
the witnessed server must have had checkpoints cosigned by both witnesses (else no figures), and
sampled receipts of both servers are verified against their published keys.

    .venv/bin/python -m loadtest.bench_witnesses                 # 5 rounds × 6 s per mode
    .venv/bin/python -m loadtest.bench_witnesses --rounds 2 --seconds 2
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import tempfile
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from loadtest.bench_api_measure import verify_samples
from loadtest.loadgen import ReceiptSampler, closed_loop, notar_client, notarize_op
from loadtest.reliability.witnesses import WitnessPod
from loadtest.servers import ORIGIN, Server, add_tenant, free_port, notar_command, start_server

MODES = {"single": (1, 16), "batch": (1000, 4)}  # digests per request, concurrent clients


@dataclass
class Contestant:
    name: str
    server: Server
    key: str
    sampler: ReceiptSampler = field(default_factory=lambda: ReceiptSampler(every=50, keep=20))
    p50: dict[str, list[float]] = field(default_factory=dict)
    p99: dict[str, list[float]] = field(default_factory=dict)
    requests: dict[str, int] = field(default_factory=dict)


def metrics(url: str) -> dict[str, float]:
    with urllib.request.urlopen(url + "/metrics", timeout=10) as r:
        lines = r.read().decode().splitlines()
    return {
        ln.rsplit(" ", 1)[0]: float(ln.rsplit(" ", 1)[1]) for ln in lines if ln and not ln.startswith("#")
    }


@contextlib.contextmanager
def serve(
    name: str, root: Path, env: dict[str, str], witnesses: Sequence[WitnessPod] = ()
) -> Iterator[Contestant]:
    """`notar serve` of ``name``; with ``witnesses`` they are started first, its log key in their
    logs file, so that the anchor finds them up."""
    data = root / name
    data.mkdir()
    common = ["--data-dir", str(data), "--origin", ORIGIN]
    made = subprocess.run(
        notar_command("keygen", *common), env=env, capture_output=True, text=True, timeout=60, check=True
    )
    try:
        for w in witnesses:
            w.logs_file.write_text(made.stdout.splitlines()[-2].split()[-1] + "\n")
            w.start()
            w.wait_ready()
        key = add_tenant(common, env, data)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        server = start_server(name, notar_command("serve", "--listen", url[7:], *common), url, env, data)
        try:
            yield Contestant(name, server, key)
        finally:
            server.stop()
    finally:
        for w in witnesses:
            w.terminate()


async def one_run(c: Contestant, mode: str, seconds: float) -> None:
    per_request, clients = MODES[mode]
    async with notar_client(c.server.url, c.key, connections=clients) as client:
        op = notarize_op(client, per_request=per_request, sampler=c.sampler)
        result = await closed_loop(op, concurrency=clients, max_requests=1_000_000, max_seconds=seconds)
    if result.errors:
        raise SystemExit(f"{c.name} {mode}: {result.summary()}")
    c.p50.setdefault(mode, []).append(result.quantile(0.5) * 1000)
    c.p99.setdefault(mode, []).append(result.quantile(0.99) * 1000)
    c.requests[mode] = c.requests.get(mode, 0) + result.ok
    print(f"  {c.name:9} {result.summary()}", flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--seconds", type=float, default=6.0, help="per mode, server and round")
    ns = p.parse_args(argv)
    base = {
        **{k: v for k, v in os.environ.items() if not k.startswith("NOTAR_")},
        "NOTAR_ANCHORS": "local",
        "NOTAR_ANCHOR_INTERVAL_S": "1",
    }
    with tempfile.TemporaryDirectory(prefix="notar-bench-witnesses-") as tmp, contextlib.ExitStack() as stack:
        root = Path(tmp)
        logs_file = root / "witness-logs.txt"
        witnesses = [
            WitnessPod(f"bench.witness.localhost/w{i}", free_port(), root / f"w{i}", logs_file)
            for i in (1, 2)
        ]
        witnessed_env = {
            **base,
            "NOTAR_WITNESSES": ",".join(f"{w.keygen()}@{w.url}" for w in witnesses),
            "NOTAR_WITNESS_QUORUM": "2",
            "NOTAR_WITNESS_INTERVAL_S": "1",
        }
        none = stack.enter_context(serve("none", root, base))
        witnessed = stack.enter_context(serve("witnessed", root, witnessed_env, witnesses))
        contestants = [none, witnessed]
        for rnd in range(ns.rounds):
            print(f"round {rnd + 1} of {ns.rounds}", flush=True)
            for mode in MODES:
                for c in contestants if rnd % 2 == 0 else contestants[::-1]:
                    asyncio.run(one_run(c, mode, ns.seconds))
        after = metrics(witnessed.server.url)
        names = [f'notar_witness_cosignatures_total{{witness="{w.name}"}}' for w in witnesses]
        cosigned = [after.get(name, 0.0) for name in names]
        if not all(cosigned):
            raise SystemExit(f"the witnesses did not cosign during the run: {cosigned}")
        for c in contestants:
            with urllib.request.urlopen(c.server.url + "/v1/keys", timeout=10) as r:
                verified = verify_samples(c.sampler.samples, json.loads(r.read()))
            print(f"{c.name}: {verified} sampled receipts verified offline")
        print(
            f"\nwitnessed: {cosigned[0]:.0f} and {cosigned[1]:.0f} checkpoints cosigned; quorum tree size "
            f"{after['notar_witness_quorum_tree_size']:.0f} of {after['notar_tree_size']:.0f}\n"
        )
        print("| mode | WITNESSES | requests | p50 (ms) | p99 (ms) |")
        print("| --- | --- | --- | --- | --- |")
        for mode, (per_request, clients) in MODES.items():
            for c in contestants:
                label = "two, quorum 2" if c is witnessed else "none"
                print(
                    f"| {mode} ({per_request:,} digest{'s' if per_request > 1 else ''}/request, "
                    f"{clients} clients) | {label} | {c.requests[mode]:,} | "
                    f"{statistics.median(c.p50[mode]):.1f} | {statistics.median(c.p99[mode]):.1f} |"
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
