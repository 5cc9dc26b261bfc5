"""The load generator and the API benchmark behave as documented (never timing anything)."""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest
from aiohttp.test_utils import TestServer

from loadtest import bench_api as bench
from loadtest import loadgen
from loadtest.servers import process_tree, tree_cpu_seconds
from merkle.checkpoint import Checkpoint, sign_checkpoint
from merkle.cosignature import CosignatureSigner
from merkle.digests import Digest, make_entries, parse_digest
from merkle.hashing import leaf_hashes
from merkle.note import Signer
from merkle.proofs import Tree
from merkle.receipt import Anchor, Receipt
from merkle.receipt_writer import write_receipts
from merkle.tiles import TileBuilder
from merkle.tileset import TileSet
from services.internal.wire import encode_answer, one_receipt
from services.model import BadDigest, Digests, Sequenced
from services.published.reader import LogReader
from storage.errors import NotFoundError
from storage.memory import MemoryStore

# ------------------------------------------------------------------------------- loadgen


def counting_op(delay: float = 0.0, fail_every: int = 0) -> loadgen.Op:
    async def op(k: int) -> int:
        if delay:
            await asyncio.sleep(delay)
        if fail_every and k % fail_every == fail_every - 1:
            raise RuntimeError(f"request {k} fails")
        return 3

    return op


async def test_closed_loop_stops_at_the_request_bound() -> None:
    r = await loadgen.closed_loop(counting_op(), concurrency=4, max_requests=50, max_seconds=30)
    assert (r.requests, r.ok, r.units, r.errors, r.stopped_by) == (50, 50, 150, 0, "count")
    assert len(r.latencies) == 50 and all(x >= 0 for x in r.latencies)


async def test_closed_loop_stops_at_the_time_bound() -> None:
    r = await loadgen.closed_loop(counting_op(0.01), concurrency=2, max_requests=10**9, max_seconds=0.2)
    assert r.stopped_by == "time" and 0 < r.requests < 10**9 and r.ok == r.requests


async def test_failures_are_counted_never_timed() -> None:
    r = await loadgen.closed_loop(counting_op(fail_every=5), concurrency=1, max_requests=20, max_seconds=30)
    assert (r.ok, r.errors, r.units) == (16, 4, 48)
    assert r.error_kinds == {"RuntimeError": 4} and "request 4 fails" in r.error_samples[0]


async def test_unanswered_requests_are_cancelled_at_the_drain_bound() -> None:
    r = await loadgen.closed_loop(
        counting_op(60), concurrency=3, max_requests=3, max_seconds=0.05, drain_seconds=0.05
    )
    assert (r.requests, r.ok, r.errors) == (3, 0, 3) and r.error_kinds == {"TimeoutError": 3}


async def test_open_loop_keeps_its_schedule_and_counts_from_the_due_time() -> None:
    r = await loadgen.open_loop(counting_op(0.05), rate=200, max_requests=20, max_seconds=30)
    assert (r.requests, r.ok, r.dropped, r.stopped_by) == (20, 20, 0, "count")
    assert min(r.latencies) >= 0.05
    # 20 requests due over 0.1 s, each taking 0.05 s: the generator did not wait for answers.
    assert r.elapsed < 1.0


async def test_open_loop_drops_what_exceeds_the_in_flight_cap() -> None:
    r = await loadgen.open_loop(
        counting_op(0.5), rate=1000, max_requests=30, max_seconds=30, max_in_flight=5
    )
    assert (r.requests, r.dropped, r.ok) == (5, 25, 5)


async def test_open_loop_stops_at_the_time_bound() -> None:
    r = await loadgen.open_loop(counting_op(), rate=100, max_requests=10**9, max_seconds=0.1)
    assert r.stopped_by == "time" and 5 <= r.requests <= 11


@pytest.mark.parametrize("bounds", [(0, 1.0), (10, 0.0), (10, float("inf")), (-1, 1.0)])
async def test_every_run_needs_finite_bounds(bounds: tuple[int, float]) -> None:
    with pytest.raises(ValueError):
        await loadgen.closed_loop(counting_op(), concurrency=1, max_requests=bounds[0], max_seconds=bounds[1])
    with pytest.raises(ValueError):
        await loadgen.open_loop(counting_op(), rate=10, max_requests=bounds[0], max_seconds=bounds[1])


def test_quantiles_are_nearest_rank() -> None:
    values = [float(i) for i in range(1, 101)]
    assert loadgen.quantile(values, 0.5) == 50.0
    assert loadgen.quantile(values, 0.99) == 99.0
    assert loadgen.quantile(values, 1.0) == 100.0
    assert loadgen.quantile([], 0.5) == 0.0


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080", "http://localhost:1/x", "http://[::1]:80"])
def test_loopback_targets_are_accepted(url: str) -> None:
    loadgen.check_loopback(url)


@pytest.mark.parametrize("url", ["http://192.0.2.1:8080", "http://10.1.2.3", "ftp://127.0.0.1", "nonsense"])
def test_other_targets_are_refused(url: str) -> None:
    with pytest.raises(loadgen.NotLoopback):
        loadgen.check_loopback(url)


def test_random_digests_are_canonical_and_distinct() -> None:
    digests = loadgen.random_digests(1000)
    assert len(set(digests)) == 1000
    assert all(d.startswith("blake3:") and len(d) == 71 and d[7:] == d[7:].lower() for d in digests)


@pytest.fixture
async def hello() -> AsyncIterator[str]:
    server = TestServer(bench.hello_app(), host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/")
    finally:
        await server.close()


async def test_the_sdk_operations_against_the_hello_world(hello: str) -> None:
    async with loadgen.notar_client(hello, "notar_x", connections=4) as client:
        single = await loadgen.closed_loop(
            loadgen.notarize_op(client, per_request=1, check=False),
            concurrency=4, max_requests=20, max_seconds=30,
        )
        assert (single.ok, single.units) == (20, 20)
        checked = await loadgen.closed_loop(
            loadgen.notarize_op(client, per_request=1), concurrency=1, max_requests=2, max_seconds=30
        )
        assert checked.errors == 2 and checked.error_kinds == {"ValueError": 2}  # no receipt reads
        proofs = await loadgen.closed_loop(
            loadgen.inclusion_op(client, size=bench.HELLO_SIZE),
            concurrency=2, max_requests=10, max_seconds=30,
        )
        assert (proofs.ok, proofs.units) == (10, 10)


def test_documents_never_share_a_chunk_yet_repeat_within_a_round() -> None:
    make = bench.document_maker(3 << 20)
    a, b, c = make(0, 0), make(0, 1), make(1, 0)
    assert len(a) == 3 << 20 and a == make(0, 0)
    mib = 1 << 20
    pieces = {x[i : i + mib] for x in (a, b, c) for i in range(0, len(x), mib)}
    assert len(pieces) == 9


def test_profile_summary_reads_collapsed_stacks() -> None:
    collapsed = (
        "main (a.py:1);handle (b.py:2);receipts (c.py:3) 30\n"
        "main (a.py:1);handle (b.py:2) 10\n"
        "main (a.py:1);sequence (d.py:4) 60\n"
    )
    text = bench.summarize_profile(collapsed)
    assert "60.0%  sequence (d.py)" in text and "30.0%  receipts (c.py)" in text
    assert "100.0%  main (a.py)" in text and "40.0%  handle (b.py)" in text


@pytest.mark.parametrize("bad", [["--rounds", "0"], ["--bulk-size", "10001"], ["--seconds", "-1"],
                                 ["--single-connections", "0"]])
def test_bad_flags_are_refused(bad: list[str]) -> None:
    with pytest.raises(SystemExit):
        bench.parse_args(bad)


def test_a_tiny_run_prints_the_table(capsys: pytest.CaptureFixture[str]) -> None:
    """A real `notar serve` and hello world as subprocesses, every measurement but documents."""
    args = ["--rounds", "1", "--seconds", "0.5", "--bulk-size", "500", "--bulk-clients", "2",
            "--single-connections", "8", "--proof-connections", "4", "--skip", "documents"]
    assert bench.main(args) == 0
    out = capsys.readouterr().out
    assert "| bulk, closed loop (500 digests/request, 2 clients) | notar serve |" in out
    assert "| single digest, open loop at 1/3 of hello world (" in out
    assert f"| single: notar ÷ {bench.HELLO} |" in out and f"| proofs: notar ÷ {bench.HELLO} |" in out
    assert "sampled receipts verified offline" in out and " 0 sampled" not in out
    for name in (bench.COMPACT, bench.DEFAULT, bench.PLAIN):  # the compact measurement's rows
        assert f"| bulk, closed loop (500 digests/request, 2 clients) | {name} |" in out
    assert f"| compact: {bench.COMPACT} ÷ {bench.DEFAULT} |" in out
    assert f"| compact: {bench.COMPACT} ÷ {bench.PLAIN} |" in out


def test_the_profile_shares_leave_waits_out(tmp_path: Path) -> None:
    """loadtest/profiled.py: own CPU time by function, blocking calls apart."""
    import cProfile
    import time

    from loadtest.profiled import top

    def busy() -> int:
        time.sleep(0.05)
        return sum(i * i for i in range(200_000))

    profile = cProfile.Profile(time.thread_time)
    profile.runcall(busy)
    profile.dump_stats(tmp_path / "p.prof")
    text = top(str(tmp_path / "p.prof"))
    assert "time.sleep" not in text.split("\n", 1)[1], "a wait is not among the shares"
    assert "busy" in text or "<genexpr>" in text


def test_the_profiled_cli_writes_its_profile(tmp_path: Path) -> None:
    """`python -m loadtest.profiled ARGS` runs `notar ARGS` and leaves the profile behind."""
    import subprocess
    import sys

    out = tmp_path / "cli.prof"
    env = {**os.environ, "CPROFILE_OUT": str(out)}
    run = subprocess.run([sys.executable, "-m", "loadtest.profiled", "--help"], env=env,
                         capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0 and "serve" in run.stdout
    assert out.exists()


# ------------------------------- the anchor's answer == the receipts' canonical forms, joined


def batch(size_before: int, n: int, tenant: str = "acme") -> tuple[Digests, list[Sequenced]]:
    """Digests and their results as the sequencer makes them, for a batch after `size_before`."""
    builder, held = TileBuilder(), TileSet()
    if size_before:
        held.add(builder.append(leaf_hashes([os.urandom(33) for _ in range(size_before)])))
        held.prune(size_before)
    digests = [Digest("blake3" if k % 3 else "sha256", os.urandom(32)) for k in range(n)]
    salts = [os.urandom(16) for _ in range(n)]
    entries = make_entries(digests, salts, tenant)
    held.add(builder.append(leaf_hashes(entries)))
    size = size_before + n
    proofs = held.inclusion_proofs(size_before, n, size)
    note = f"test.notar/log\n{size}\nroot=\n\n— test.notar/log sig=\n— clock \"sig\"\\=\n"
    results = [Sequenced(size_before + k, entries[k], salts[k], size, proofs[k], note) for k in range(n)]
    return Digests.parse([str(d) for d in digests]), results


def one_by_one(
    origin: str, tenant: str, digests: Digests, results: list[Sequenced], anchors: list[Anchor]
) -> bytes:
    """The answer made receipt by receipt with Receipt.build and Receipt.to_json."""
    receipts = [
        Receipt.build(
            digest=d, salt=r.salt, subject=tenant, origin=origin, index=r.index, tree_size=r.tree_size,
            inclusion=r.inclusion, checkpoint=r.checkpoint, anchors=anchors,
        ).to_json()
        for d, r in zip(digests.digests(), results, strict=True)
    ]
    return b'{"receipts":[' + b",".join(receipts) + b"]}"


@pytest.mark.parametrize(("before", "n"), [(0, 1), (0, 7), (1, 1), (255, 3), (1000, 600), (70_000, 300)])
def test_the_anchors_answer_is_the_receipts_canonical_forms(before: int, n: int) -> None:
    tenant = "acme" if before % 2 else "ünïcode-tenant"
    digests, results = batch(before, n, tenant)
    answer = encode_answer(origin="test.notar/log", tenant=tenant, digests=digests.digests(), results=results)
    assert answer == one_by_one("test.notar/log", tenant, digests, results, [])
    parsed = [Receipt.from_obj(r) for r in orjson.loads(answer)["receipts"]]
    assert [r.to_json() for r in parsed] == [orjson.dumps(r) for r in orjson.loads(answer)["receipts"]]
    single = encode_answer(
        origin="test.notar/log", tenant=tenant, digests=digests.digests()[:1], results=results[:1]
    )
    assert one_receipt(single) == parsed[0].to_json()


def test_the_writer_with_anchors_and_several_checkpoints() -> None:
    digests, results = batch(100, 10)
    later = [Sequenced(r.index, r.entry, r.salt, r.tree_size + 5, r.inclusion, r.checkpoint + "x")
             for r in results[6:]]
    mixed = results[:6] + later
    anchors = [Anchor.from_obj({"type": "local", "tx": "0xé\"\n", "n": 3})]
    want = one_by_one("ö.notar/log", "acme", digests, mixed, anchors)
    got = write_receipts(subject="acme", origin="ö.notar/log", digests=digests.texts, proven=mixed,
                         anchors=anchors, head=b'{"receipts":[', tail=b"]}")
    assert got == want
    assert orjson.loads(want)["receipts"][7]["log"]["tree_size"] == 115


def test_the_writer_refuses_mismatched_lengths() -> None:
    digests, results = batch(0, 3)
    with pytest.raises(ValueError):
        encode_answer(origin="o", tenant="acme", digests=digests.digests(), results=results[:2])
    with pytest.raises(ValueError):
        one_receipt(encode_answer(origin="o", tenant="acme", digests=digests.digests(), results=results))


# ------------------------------------------------ the bulk digest check == parse_digest


NEAR_MISSES: list[object] = [
    "blake3:" + "AB" * 32,  # uppercase
    "blake3:" + "ab" * 31 + "a ",  # a space fromhex would skip
    "blake3:" + " " + "ab" * 31 + "a",
    "sha256:" + "ab" * 31 + "\u0661\u0662",  # non-ASCII digits
    "SHA256:" + "ab" * 32,
    "blake2:" + "ab" * 32,
    "blake3-" + "ab" * 32,
    "blake3:" + "ab" * 31 + "g0",
    "blake3:" + "ab" * 33,
    "blake3:" + "ab" * 31,
    "blake3:",
    None,
    71,
    ["blake3:" + "ab" * 32],
]


@pytest.mark.parametrize("bad", NEAR_MISSES)
@pytest.mark.parametrize("where", [0, 5, 9])
def test_the_bulk_digest_check_refuses_what_parse_digest_refuses(bad: object, where: int) -> None:
    raw: list[object] = [*loadgen.random_digests(5), *("sha256:" + os.urandom(32).hex() for _ in range(5))]
    assert Digests.parse(raw).digests() == [parse_digest(d) for d in raw]
    raw[where] = bad
    with pytest.raises(BadDigest) as e:
        Digests.parse(raw)
    assert e.value.position == where
    with pytest.raises(ValueError):
        parse_digest(bad)


# ------------------------------------------- LogReader's cached tiles == merkle's own proofs


async def published_log(sizes: list[int]) -> tuple[MemoryStore, list[bytes]]:
    """A store holding the tiles of a log grown through `sizes` (each partial tile at every
    width it was published at, as the publisher leaves them), then its last checkpoint."""
    store = MemoryStore()
    builder = TileBuilder()
    hashes: list[bytes] = []
    for size in sizes:
        new = leaf_hashes([os.urandom(40) for _ in range(size - len(hashes))])
        hashes += new
        for tile in builder.append(new):
            await store.put("log/" + tile.id.path, tile.data)
    signer = Signer.generate(ORIGIN_T)
    note = sign_checkpoint(Checkpoint(ORIGIN_T, builder.size, builder.root()), signer,
                           CosignatureSigner.generate("clock"), 1)
    await store.put("log/checkpoint", note.encode())
    return store, hashes


ORIGIN_T = "test.notar/log"


async def test_log_reader_proofs_are_merkle_proofs_at_every_size() -> None:
    store, hashes = await published_log([1, 5, 256, 300, 65_536 + 700, 65_536 + 1500])
    tree = Tree(hashes)
    reader = LogReader(store, origin=ORIGIN_T)
    rng = random.Random(6962)
    sizes = [1, 2, 3, 255, 256, 257, 299, 300, 301, 511, 65_536, 65_537, 65_536 + 700, len(hashes)]
    sizes += [rng.randrange(1, len(hashes) + 1) for _ in range(30)]
    for size in sizes:
        for index in {0, size - 1, size // 2, rng.randrange(size)}:
            assert await reader.inclusion_proof(index, size) == tree.inclusion_proof(index, size)
        for first in {0, 1, size // 3, size - 1, size}:
            assert await reader.consistency_proof(first, size) == tree.consistency_proof(first, size)
    with pytest.raises(NotFoundError):
        await reader.inclusion_proof(0, len(hashes) + 1)


async def test_log_reader_reads_each_tile_once() -> None:
    store, hashes = await published_log([70_000])
    reader = LogReader(store, origin=ORIGIN_T)
    got: list[str] = []
    real_get = store.get

    async def counting_get(key: str) -> bytes:
        got.append(key)
        return await real_get(key)

    store.get = counting_get  # type: ignore[method-assign]
    tree = Tree(hashes)
    for index in (0, 1, 69_999, 300, 0):
        assert await reader.inclusion_proof(index, 70_000) == tree.inclusion_proof(index, 70_000)
    tiles = [k for k in got if k.startswith("log/tile/")]
    assert len(tiles) == len(set(tiles)) and tiles


def test_a_servers_cpu_counts_its_workers() -> None:
    """`notar serve` answers from worker processes: the benchmarks read the CPU of the server's
    process tree (servers.process_tree), not of the parent alone, which would show ~0 cores."""
    code = (
        "import subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'while True: pass'])\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(30)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        assert process_tree(parent.pid) == [parent.pid, child]
        before = tree_cpu_seconds(process_tree(parent.pid))
        deadline = 200
        while tree_cpu_seconds([child]) < 0.2 and deadline:  # the child spins: its CPU grows
            subprocess.run([sys.executable, "-c", "pass"], check=True)
            deadline -= 1
        assert tree_cpu_seconds(process_tree(parent.pid)) > before
        assert tree_cpu_seconds([parent.pid]) < tree_cpu_seconds(process_tree(parent.pid))
    finally:
        for pid in process_tree(parent.pid)[1:]:
            os.kill(pid, 9)
        parent.kill()
        parent.wait()
