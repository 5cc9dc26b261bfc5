"""What Kubernetes would run, minus Kubernetes: separate `notar serve --role …` processes — two
ingest, one anchor, two verify — sharing one SeaweedFS (STORE=s3), on loopback ports.

The end-to-end tests of tests/services/test_api.py run against it unchanged: their client sends
each request to a pod of the role that serves it, alternating between the two pods of a role,
and honours 503 + Retry-After as any client must (a verify pod may see the published checkpoint
a moment after the anchor acknowledged the entries). One deployment serves the whole module, so
the test that expects no document at all of its tenant is rewritten as a before/after check
(`test_an_interrupted_upload_leaves_nothing_visible_anywhere`). Then tests of the topology itself.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from merkle import Receipt, decode_bundle, leaf_hash, verify_inclusion, verify_receipt
from merkle.anchors import offline_anchor_verifiers
from merkle.checkpoint import parse_checkpoint
from merkle.note import parse_note
from services.common.index_key import create_index_key
from services.published import layout
from services.sdk import NotarClient, trusted_keys
from storage.s3 import S3Store
from tests.seaweed import S3Target, free_ports

# The end-to-end tests of the single-process server, collected here again against the topology.
from tests.services.test_api import (  # noqa: F401
    test_auth_is_required_and_checked,
    test_bad_requests,
    test_corrupted_chunks_are_never_served,
    test_digests_give_valid_receipts_in_order,
    test_documents_round_trip_and_stay_private,
    test_post_verify_names_each_check,
    test_proofs_keys_and_published_log,
    test_receipts_first_and_all_and_tenant_isolation,
    test_ten_thousand_digests_in_one_call,
)

ORIGIN = "topology.notar.test/log"
INGEST_ROUTES = ("/v1/digests", "/v1/documents")
START_S = 60.0


@dataclass
class Pod:
    role: str
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def tail(self) -> str:
        return f"--- {self.role} {self.url} ---\n" + self.log.read_text(errors="replace")[-3000:]


@dataclass
class Topology:
    pods: list[Pod]
    env: dict[str, str]
    prefix: str
    target: S3Target
    keys: dict[str, str] = field(default_factory=dict)  # tenant → API key

    def of(self, role: str) -> list[Pod]:
        return [p for p in self.pods if p.role == role]

    def logs(self) -> str:
        return "\n".join(p.tail() for p in self.pods)


def run_notar(*args: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "services.cli", *args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )


def start_pod(role: str, port: int, env: dict[str, str], tmp: Path) -> Pod:
    """`notar serve --role ROLE` on 127.0.0.1:`port` with `env`, its own DATA_DIR and log under `tmp`."""
    data = tmp / f"{role}-{port}"
    data.mkdir()
    env = {**env, "NOTAR_DATA_DIR": str(data), "NOTAR_LISTEN": f"127.0.0.1:{port}"}
    log = tmp / f"{role}-{port}.log"
    return Pod(role, f"http://127.0.0.1:{port}", run_notar("serve", "--role", role, env=env, log=log), log)


def wait_ready(pod: Pod, deadline: float) -> None:
    while time.monotonic() < deadline:
        if pod.process.poll() is not None:
            raise AssertionError(f"{pod.role} exited with {pod.process.returncode}\n{pod.tail()}")
        try:
            with urllib.request.urlopen(pod.url + "/readyz", timeout=2) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    raise AssertionError(f"{pod.role} at {pod.url} not ready in {START_S:g} s\n{pod.tail()}")


def stop(pods: list[Pod]) -> dict[str, int | None]:
    for p in pods:
        if p.process.poll() is None:
            p.process.send_signal(signal.SIGTERM)
    codes: dict[str, int | None] = {}
    for p in pods:
        try:
            codes[f"{p.role} {p.url}"] = p.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            p.process.kill()
            p.process.wait(timeout=10)
            codes[f"{p.role} {p.url}"] = None
    return codes


def pod_env(s3_target: S3Target, prefix: str, origin: str) -> dict[str, str]:
    """What every pod of a topology on ``s3_target`` gets: the bucket, its credentials, the origin,
    short batches and local anchoring every second."""
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith(("NOTAR_", "AWS_", "OTEL_"))},
        "PYTHONUNBUFFERED": "1",
        "NOTAR_STORE": "s3",
        "NOTAR_S3_ENDPOINT": s3_target.endpoint,
        "NOTAR_S3_BUCKET": s3_target.bucket,
        "NOTAR_S3_REGION": s3_target.region,
        "NOTAR_S3_PREFIX": prefix,
        "NOTAR_ORIGIN": origin,
        "NOTAR_BATCH_MS": "20",
        "NOTAR_ANCHORS": "local",
        "NOTAR_ANCHOR_INTERVAL_S": "1",
        "AWS_ACCESS_KEY_ID": s3_target.access_key,
        "AWS_SECRET_ACCESS_KEY": s3_target.secret_key,
    }


@pytest.fixture(scope="module")
def topology(s3_target: S3Target, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Topology]:
    tmp = tmp_path_factory.mktemp("topology")
    prefix = f"topology-{uuid.uuid4().hex[:12]}/"
    base = pod_env(s3_target, prefix, ORIGIN) | {"NOTAR_LOG_FORMAT": "json"}
    create_index_key(tmp / "index.key")  # one for every pod, as a Kubernetes Secret would be
    base["NOTAR_INDEX_KEY_FILE"] = str(tmp / "index.key")
    ports = free_ports(5)
    anchor_url = f"http://127.0.0.1:{ports[0]}"
    pods: list[Pod] = []
    try:
        for role, port in zip(("anchor", "ingest", "ingest", "verify", "verify"), ports, strict=True):
            env = base if role == "anchor" else {**base, "NOTAR_ANCHOR_URL": anchor_url}
            pods.append(start_pod(role, port, env, tmp))
            if role == "anchor":  # it publishes the log's keys that verify pods serve
                wait_ready(pods[0], time.monotonic() + START_S)
        deadline = time.monotonic() + START_S
        for p in pods:
            wait_ready(p, deadline)
        topo = Topology(pods, base, prefix, s3_target)
        for tenant in ("acme", "globex"):
            log = tmp / "tenant.log"
            add = run_notar("tenant", "add", tenant, env={**base, "NOTAR_DATA_DIR": str(tmp)}, log=log)
            assert add.wait(timeout=60) == 0, log.read_text()
            topo.keys[tenant] = log.read_text().strip().splitlines()[-1]
        yield topo
    finally:
        codes = stop(pods)
    assert all(code == 0 for code in codes.values()), f"not a clean stop: {codes}\n" + "\n".join(
        p.tail() for p in pods
    )


class RoutingClient:
    """Sends each request to a pod of the role that serves it, round-robin; retries 503 with
    Retry-After a bounded number of times, as clients of the real deployment do."""

    def __init__(self, topo: Topology, session: aiohttp.ClientSession) -> None:
        self._ingest = itertools.cycle(topo.of("ingest"))
        self._verify = itertools.cycle(topo.of("verify"))
        self._session = session
        self.served: list[tuple[str, str]] = []  # (pod url, path)

    def _pod(self, path: str) -> Pod:
        return next(self._ingest if path.startswith(INGEST_ROUTES) else self._verify)

    async def request(self, method: str, path: str, **kw: Any) -> aiohttp.ClientResponse:
        replayable = not hasattr(kw.get("data"), "__aiter__")
        for _ in range(20):
            pod = self._pod(path)
            self.served.append((pod.url, path))
            r = await self._session.request(method, pod.url + path, **kw)
            if r.status != 503 or not replayable:
                return r
            await r.read()
            await asyncio.sleep(min(2.0, float(r.headers.get("Retry-After", "1"))))
        return r

    async def get(self, path: str, **kw: Any) -> aiohttp.ClientResponse:
        return await self.request("GET", path, **kw)

    async def post(self, path: str, **kw: Any) -> aiohttp.ClientResponse:
        return await self.request("POST", path, **kw)

    async def put(self, path: str, **kw: Any) -> aiohttp.ClientResponse:
        return await self.request("PUT", path, **kw)


@dataclass
class TopologyNotar:
    """What tests/services/test_api.py expects of its `notar` fixture."""

    client: RoutingClient
    store: S3Store
    keys: list[str]
    acme: dict[str, str]
    globex: dict[str, str]


@pytest.fixture
async def notar(topology: Topology) -> AsyncIterator[TopologyNotar]:
    store = await S3Store.from_config(topology.target.config(prefix=topology.prefix))
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as session:
        client = RoutingClient(topology, session)
        keys = await (await client.get("/v1/keys")).json()
        try:
            yield TopologyNotar(
                client,
                store,
                trusted_keys(keys),
                {"Authorization": f"Bearer {topology.keys['acme']}"},
                {"Authorization": f"Bearer {topology.keys['globex']}"},
            )
        finally:
            await store.close()
        pods = {url for url, _ in client.served}
        assert len(pods) >= 2 or len(client.served) < 3, "requests were spread over the pods"


# -- the topology itself -------------------------------------------------------------------------


async def test_each_ingest_notarizes_and_each_verify_serves_every_receipt(topology: Topology) -> None:
    acme = topology.keys["acme"]
    made: dict[str, Receipt] = {}
    for pod in topology.of("ingest"):
        async with NotarClient(pod.url, acme) as c:
            digests = [f"sha256:{os.urandom(32).hex()}" for _ in range(50)]  # new to the log
            made |= dict(zip(digests, await c.notarize(digests), strict=True))
    for pod in topology.of("verify"):
        async with NotarClient(pod.url, acme) as v:
            trusted = trusted_keys(await v.keys())
            for digest, first in made.items():
                got = await v.receipt(digest)  # retries 503 until this pod sees the entry published
                assert (got.index, got.entry, got.salt) == (first.index, first.entry, first.salt)
                assert got.subject == "acme"
                assert verify_receipt(got, keys=trusted, digest=digest).valid
            digest, receipt = next(iter(made.items()))
            assert (await v.verify(receipt, digest))["valid"] is True
            size, index = receipt.tree_size, receipt.index
            proof = [bytes.fromhex(h) for h in await v.inclusion_proof(index, size)]
            root = parse_checkpoint(parse_note(receipt.checkpoint).text).root
            assert verify_inclusion(leaf_hash(receipt.entry), index, size, proof, root)


async def test_a_document_stored_through_one_ingest_is_served_by_the_other(topology: Topology) -> None:
    first, second = topology.of("ingest")
    data = os.urandom(5 * 1024 * 1024 + 17)

    async def body() -> AsyncIterator[bytes]:
        for at in range(0, len(data), 1 << 20):
            yield data[at : at + (1 << 20)]

    async with (
        NotarClient(first.url, topology.keys["acme"]) as a,
        NotarClient(second.url, topology.keys["acme"]) as b,
    ):
        up = await a.upload(body())
        got = b"".join([chunk async for chunk in b.document(up.document["digest"])])
    assert got == data


async def metric(session: aiohttp.ClientSession, url: str, name: str) -> float:
    async with session.get(url + "/metrics") as r:
        for line in (await r.text()).splitlines():
            if line.startswith(name + " "):
                return float(line.split()[-1])
    raise AssertionError(f"{name} not in {url}/metrics")


async def test_one_log_seen_alike_by_every_pod(topology: Topology) -> None:
    anchor = topology.of("anchor")[0]
    async with aiohttp.ClientSession() as s:
        async with NotarClient(topology.of("ingest")[0].url, topology.keys["acme"]) as c:
            await c.notarize([f"blake3:{os.urandom(32).hex()}"])
        async with asyncio.timeout(30):
            while True:
                size = await metric(s, anchor.url, "notar_tree_size")
                notes = set()
                for pod in topology.of("verify"):
                    async with s.get(pod.url + "/log/checkpoint") as r:
                        notes.add(await r.text())
                sizes = {parse_checkpoint(parse_note(n).text).size for n in notes}
                if len(notes) == 1 and sizes == {size}:
                    break
                await asyncio.sleep(0.2)
        store = await S3Store.from_config(topology.target.config(prefix=topology.prefix))
        try:
            assert (await store.get("log/checkpoint")).decode() == notes.pop(), (
                "the bucket holds the same bytes"
            )
        finally:
            await store.close()
        assert await metric(s, anchor.url, "notar_entries_sequenced_total") == size
        assert await metric(s, anchor.url, "notar_publication_lag_entries") == 0
        for pod in topology.of("ingest"):
            async with s.get(pod.url + "/metrics") as r:
                text = await r.text()
            served = [
                line
                for line in text.splitlines()
                if line.startswith(
                    'notar_http_requests_total{method="POST",route="/v1/digests",status="200"}'
                )
            ]
            assert served and float(served[0].split()[-1]) >= 1, f"{pod.url} served no digests"


async def test_an_interrupted_upload_leaves_nothing_visible_anywhere(notar: TopologyNotar) -> None:
    async def manifests() -> list[str]:
        return sorted([k async for k in notar.store.list("documents/acme/manifests/")])

    async def size() -> int:
        note = await (await notar.client.get("/log/checkpoint")).text()
        return parse_checkpoint(parse_note(note).text).size

    before, size_before = await manifests(), await size()

    async def body() -> AsyncIterator[bytes]:
        yield os.urandom(5 * 1024 * 1024)
        raise ConnectionResetError("client went away")

    with pytest.raises(Exception):  # noqa: B017 - aiohttp reports the broken body its own way
        await notar.client.put("/v1/documents", data=body(), headers=notar.acme)
    assert await manifests() == before
    assert await size() == size_before


async def test_every_verify_pod_serves_the_receipt_upgraded_once_the_anchor_anchored_it(
    topology: Topology,
) -> None:
    digest = f"sha256:{os.urandom(32).hex()}"
    async with NotarClient(topology.of("ingest")[1].url, topology.keys["acme"]) as c:
        first = (await c.notarize([digest]))[0]
    assert first.anchors == ()
    for pod in topology.of("verify"):
        async with NotarClient(pod.url, topology.keys["acme"]) as v:
            trusted = trusted_keys(await v.keys())
            async with asyncio.timeout(30):  # ANCHOR_INTERVAL_S=1
                while not (got := await v.receipt(digest)).anchors:
                    await asyncio.sleep(0.2)
            assert (got.entry, got.index, got.salt) == (first.entry, first.index, first.salt)
            assert [a.type for a in got.anchors] == ["local"]
            result = verify_receipt(
                got, keys=trusted, digest=digest, anchor_verifiers=offline_anchor_verifiers(keys=trusted)
            )
            assert result.valid, result.failed
            assert (await v.verify(got, digest))["valid"] is True


# -- format v2 over the wire between the pods, and the bucket's prefixes -------------------------------


async def test_one_request_is_no_contiguous_run_and_interleaves_with_another(topology: Topology) -> None:
    """Two 1,000-digest requests through the two ingest pods and the internal wire: in one batch
    (same checkpoint), their entries interleave; placed in request order they would be two runs.
    The chance that uniform random placement gives fewer than 400 switches between them is
    below 10^-100; that either request comes out sorted, 1/1000!."""
    first, second = topology.of("ingest")
    async with (
        NotarClient(first.url, topology.keys["acme"]) as a,
        NotarClient(second.url, topology.keys["globex"]) as b,
    ):
        for _ in range(20):  # until both land in one batch (BATCH_MS=20)
            digests = [[f"blake3:{os.urandom(32).hex()}" for _ in range(1000)] for _ in range(2)]
            mine, theirs = await asyncio.gather(a.notarize(digests[0]), b.notarize(digests[1]))
            if mine[0].checkpoint == theirs[0].checkpoint:
                break
        else:
            raise AssertionError("two concurrent requests never shared a batch")
    ours, other = [r.index for r in mine], [r.index for r in theirs]
    assert ours != sorted(ours) and other != sorted(other)
    placed = sorted((i, who) for who, indices in ((0, ours), (1, other)) for i in indices)
    switches = sum(1 for (_, x), (_, y) in itertools.pairwise(placed) if x != y)
    assert switches > 400  # ~1,000 expected; two contiguous runs would give 1
    assert {r.subject for r in mine} == {"acme"} and {r.subject for r in theirs} == {"globex"}


async def test_the_bucket_holds_no_notarized_digest_and_only_tlog_tiles_are_public(
    topology: Topology,
) -> None:
    digests = [f"{('sha256', 'blake3')[k % 2]}:{os.urandom(32).hex()}" for k in range(300)]
    async with NotarClient(topology.of("ingest")[0].url, topology.keys["acme"]) as c:
        receipts = await c.notarize(digests)
    size = receipts[0].tree_size
    store = await S3Store.from_config(topology.target.config(prefix=topology.prefix))
    session = aiohttp.ClientSession()
    try:
        async with asyncio.timeout(30):
            while parse_checkpoint(parse_note(await store.get("log/checkpoint")).text).size < size:
                await asyncio.sleep(0.1)
        public = [k async for k in store.list("log/")]
        assert all(k == "log/checkpoint" or k.startswith("log/tile/") for k in public), public
        blobs = {k: await store.get(k) for k in public}
        for digest in digests:
            value = bytes.fromhex(digest.split(":")[1])
            for key, blob in blobs.items():
                assert value not in blob and digest.split(":")[1].encode() not in blob, (digest, key)
        for key, blob in blobs.items():
            if key.startswith("log/tile/entries/"):
                assert all(len(e) == 33 and e[0] == 2 for e in decode_bundle(blob)), key
        private = {k async for k in store.list(layout.private_prefix())}
        assert {layout.lease_key(), layout.keys_key(), layout.format_key()} <= private
        for key, want in (
            ("log/checkpoint", layout.CHECKPOINT_CACHE),
            ("log/tile/0/000", layout.IMMUTABLE),
            (next(k for k in public if ".p/" in k), layout.IMMUTABLE),
            (next(k for k in public if k.startswith("log/tile/entries/")), layout.IMMUTABLE),
        ):
            head = await store.client.head_object(Bucket=store.bucket, Key=store.object_key(key))
            assert head.get("CacheControl") == want, key
            async with session.get(topology.of("verify")[0].url + "/" + key) as r:
                assert r.headers["Cache-Control"] == want, key  # the verify pods answer the same
    finally:
        await session.close()
        await store.close()
