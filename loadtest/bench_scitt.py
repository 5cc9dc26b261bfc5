"""SCITT benchmark: signed statements registered through `POST /entries` of a real `notar serve`
(a subprocess on 127.0.0.1, fsync on as in production), in interleaved rounds of one run.

Each round makes two runs, each bounded in requests and in seconds (loadtest/loadgen.py):

1. closed loop: `--connections` clients each post a fresh signed statement (Ed25519, its issuer
   registered with `notar tenant issuer add`) and wait for the 201 and its COSE receipt before the
   next: statements registered per second, and the p50/p99 of the receipt latency (request sent →
   receipt received). A 303 (not sequenced within SCITT_WAIT_MS) counts as a failure, not a latency.
2. open loop at half the closed loop's rate of that round: the receipt latency of a server that is
   not saturated (counted from each request's due time, so a server falling behind shows).

Statements are signed before each run, so the client's signing is not measured. Figures are medians
over rounds; the server's CPU per statement is read from /proc. A sample of receipts is verified
offline (merkle.cose.verify_receipt under the log key of /v1/keys): no numbers otherwise.

    .venv/bin/python -m loadtest.bench_scitt               # 5 rounds of 8 s
    .venv/bin/python -m loadtest.bench_scitt --quick       # 2 rounds of 3 s
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from loadtest.bench_api_report import machine
from loadtest.loadgen import LoadResult, Op, check_loopback, closed_loop, open_loop
from loadtest.servers import (
    ORIGIN,
    TENANT,
    Server,
    notar_command,
    notar_server,
    process_tree,
    tree_cpu_seconds,
)
from merkle.cbor import Tag, encode
from merkle.cose import ALG_EDDSA, sig_structure, verify_receipt
from merkle.note import Verifier
from merkle.scitt import key_id, parse_statement

ISS = "https://issuer.bench.notar.localhost"
SAMPLE_EVERY = 97  # one receipt in this many is kept and verified offline


@dataclass
class Issuer:
    key: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)

    @property
    def pem(self) -> bytes:
        return self.key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def statements(self, tag: str, count: int) -> list[bytes]:
        """`count` distinct signed statements (SPEC §12), each with a small JSON payload."""
        protected = encode(
            {
                1: ALG_EDDSA,
                3: "application/json",
                4: key_id(self.key.public_key()),
                15: {1: ISS, 2: f"pkg:bench/{tag}"},
            }
        )
        out = []
        for k in range(count):
            payload = b'{"run": "%s", "n": %d}' % (tag.encode(), k)
            signature = self.key.sign(sig_structure(protected, payload))
            out.append(encode(Tag(18, [protected, {}, payload, signature])))
        return out


@dataclass
class Collected:
    samples: list[tuple[bytes, bytes]] = field(default_factory=list)  # (statement, receipt)


def post_op(
    session: aiohttp.ClientSession, url: str, api_key: str, statements: Sequence[bytes], collected: Collected
) -> Op:
    headers = {"Content-Type": "application/cose", "Authorization": f"Bearer {api_key}"}

    async def op(k: int) -> int:
        body = statements[k]
        async with session.post(url + "/entries", data=body, headers=headers, allow_redirects=False) as r:
            answer = await r.read()
        if r.status != 201:
            raise RuntimeError(f"POST /entries answered {r.status}: {answer[:200]!r}")
        if k % SAMPLE_EVERY == 0:
            collected.samples.append((body, answer))
        return 1

    return op


@dataclass
class Round:
    closed: LoadResult
    opened: LoadResult
    cpu_per_statement_ms: float


async def one_round(
    server: Server, api_key: str, issuer: Issuer, ns: argparse.Namespace, number: int, collected: Collected
) -> Round:
    most = ns.max_statements
    closed_set = issuer.statements(f"closed-{number}-{os.urandom(4).hex()}", most)
    connector = aiohttp.TCPConnector(limit=ns.connections)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as http:
        pids = process_tree(server.pid)  # with its workers
        cpu = tree_cpu_seconds(pids)
        op = post_op(http, server.url, api_key, closed_set, collected)
        closed = await closed_loop(op, concurrency=ns.connections, max_requests=most, max_seconds=ns.seconds)
        cpu = tree_cpu_seconds(pids) - cpu
        rate = max(closed.rate / 2, 1.0)
        count = min(most, int(rate * ns.seconds) + 1)
        open_set = issuer.statements(f"open-{number}-{os.urandom(4).hex()}", count)
        op = post_op(http, server.url, api_key, open_set, collected)
        opened = await open_loop(
            op,
            rate=rate,
            max_requests=len(open_set),
            max_seconds=ns.seconds,
            max_in_flight=ns.connections * 4,
        )
    return Round(closed, opened, 1000 * cpu / max(closed.ok, 1))


async def log_verifier(url: str) -> Verifier:
    async with aiohttp.ClientSession() as http, http.get(url + "/v1/keys") as r:
        document = await r.json()
    return Verifier.from_key(document["logs"][0]["log"])


def verify_samples(collected: Collected, verifier: Verifier) -> int:
    """Every sampled receipt checked offline for its statement's entry; ValueError otherwise."""
    for statement, receipt in collected.samples:
        verify_receipt(receipt, [verifier], entry=parse_statement(statement).entry)
    return len(collected.samples)


def register_issuer(root: Path, issuer: Issuer) -> None:
    data = root / "notar-scitt"
    pem = root / "issuer.pem"
    pem.write_bytes(issuer.pem)
    out = subprocess.run(
        notar_command(
            "tenant",
            "issuer",
            "add",
            TENANT,
            "--iss",
            ISS,
            "--key",
            str(pem),
            "--data-dir",
            str(data),
            "--origin",
            ORIGIN,
        ),
        cwd=data,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if out.returncode != 0:
        raise SystemExit(f"notar tenant issuer add failed: {out.stderr.strip()[-2000:]}")


async def run(ns: argparse.Namespace, root: Path) -> tuple[list[Round], int]:
    issuer = Issuer()
    rounds: list[Round] = []
    collected = Collected()
    with notar_server("notar-scitt", root) as (server, api_key):
        check_loopback(server.url)
        register_issuer(root, issuer)
        for number in range(ns.rounds):
            rounds.append(await one_round(server, api_key, issuer, ns, number, collected))
            r = rounds[-1]
            print(f"round {number + 1}: closed {r.closed.summary()}; open {r.opened.summary()}", flush=True)
        checked = verify_samples(collected, await log_verifier(server.url))
    return rounds, checked


def report(rounds: Sequence[Round], ns: argparse.Namespace) -> str:
    def med(values: Sequence[float]) -> float:
        return statistics.median(values)

    closed_rate = med([r.closed.rate for r in rounds])
    rows = [
        "| run | statements/s | receipt p50 ms | receipt p99 ms | failed | server CPU ms/statement |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
        f"| closed loop, {ns.connections} connections | {closed_rate:,.0f} "
        f"| {1000 * med([r.closed.quantile(0.5) for r in rounds]):,.0f} "
        f"| {1000 * med([r.closed.quantile(0.99) for r in rounds]):,.0f} "
        f"| {sum(r.closed.errors for r in rounds)} | {med([r.cpu_per_statement_ms for r in rounds]):.2f} |",
        f"| open loop at half that rate | {med([r.opened.rate for r in rounds]):,.0f} "
        f"| {1000 * med([r.opened.quantile(0.5) for r in rounds]):,.0f} "
        f"| {1000 * med([r.opened.quantile(0.99) for r in rounds]):,.0f} "
        f"| {sum(r.opened.errors + r.opened.dropped for r in rounds)} | |",
    ]
    return "\n".join(rows)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m loadtest.bench_scitt", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="2 rounds of 3 s")
    p.add_argument("--rounds", type=int, help="interleaved rounds (default 5; --quick 2)")
    p.add_argument("--seconds", type=float, help="bound of each run in seconds (default 8; --quick 3)")
    p.add_argument("--connections", type=int, default=64, help="concurrent clients (default 64)")
    p.add_argument("--max-statements", type=int, default=20_000, help="statements per run at most")
    ns = p.parse_args(argv)
    ns.rounds = ns.rounds if ns.rounds is not None else (2 if ns.quick else 5)
    ns.seconds = ns.seconds if ns.seconds is not None else (3.0 if ns.quick else 8.0)
    if ns.rounds <= 0 or ns.seconds <= 0 or ns.connections <= 0 or ns.max_statements <= 0:
        p.error("--rounds, --seconds, --connections and --max-statements must be positive")
    return ns


def main(argv: Sequence[str] | None = None) -> int:
    ns = parse_args(argv)
    print(f"machine: {machine()}", flush=True)
    load_before = os.getloadavg()
    root = Path(tempfile.mkdtemp(prefix="notar-bench-scitt-"))
    try:
        rounds, checked = asyncio.run(run(ns, root))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print()
    print(
        "load average (1, 5, 15 min) before: {:.2f} {:.2f} {:.2f}, after: {:.2f} {:.2f} {:.2f}".format(
            *load_before, *os.getloadavg()
        )
    )
    print(
        f"rounds: {ns.rounds}, each run bounded to {ns.seconds:g} s and {ns.max_statements:,} statements; "
        f"{checked} sampled receipts verified offline"
    )
    print(report(rounds, ns))
    return 0


if __name__ == "__main__":
    sys.exit(main())
