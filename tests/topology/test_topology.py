"""What Kubernetes would run, minus Kubernetes: the loopback cluster of loadtest/cluster.py —
separate `notar serve --role …` processes (one anchor, two ingest, two verify) sharing one
SeaweedFS bucket (STORE=s3), with Debian's haproxy in front as the load balancer.

The end-to-end tests of tests/services/test_api.py run against it unchanged, through haproxy: it
sends each request to a pod of the role that serves it, and the client honours 503 + Retry-After
as any client must (a verify pod may see the published checkpoint a moment after the anchor
acknowledged the entries). One deployment serves the whole module, so the test that expects no
document at all of its tenant is rewritten as a before/after check
(`test_an_interrupted_upload_leaves_nothing_visible_anywhere`). Then tests of the topology
itself, pod by pod, and of the load balancer in front of it. Slow (a cluster of real processes):
`pytest -m "not slow"` leaves them out; CI runs them.
"""

from __future__ import annotations

import asyncio
import itertools
import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from loadtest.balancer import served_by
from loadtest.cluster import LoopbackCluster, running_cluster
from loadtest.reliability.cluster import S3Bucket
from merkle import Receipt, decode_bundle, leaf_hash, verify_inclusion, verify_receipt
from merkle.anchors import offline_anchor_verifiers
from merkle.checkpoint import parse_checkpoint
from merkle.note import parse_note
from services.published import layout
from services.sdk import NotarClient, trusted_keys
from storage.base import ObjectStore
from storage.s3 import S3Store
from tests.seaweed import S3Target

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

# Other topology tests that assemble their own processes took these from here; they live on in
# tests/topology/processes.py.
from tests.topology.processes import START_S, Pod, pod_env, run_notar, stop, wait_ready  # noqa: F401

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def topology(s3_target: S3Target, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoopbackCluster]:
    bucket = S3Bucket(s3_target.endpoint, s3_target.bucket, s3_target.access_key, s3_target.secret_key,
                      s3_target.region)
    with running_cluster(tmp_path_factory.mktemp("topology"), bucket, tenants=("acme", "globex")) as cluster:
        yield cluster
    codes = cluster.exit_codes or {}
    assert codes and all(code == 0 for code in codes.values()), f"not a clean stop: {codes}\n{cluster.logs()}"


class BalancedClient:
    """Sends every request to the load balancer; retries 503 with Retry-After a bounded number
    of times, as clients of the real deployment do."""

    def __init__(self, url: str, session: aiohttp.ClientSession) -> None:
        self._url = url
        self._session = session

    async def request(self, method: str, path: str, **kw: Any) -> aiohttp.ClientResponse:
        replayable = not hasattr(kw.get("data"), "__aiter__")
        for _ in range(20):
            r = await self._session.request(method, self._url + path, **kw)
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

    client: BalancedClient
    store: ObjectStore
    keys: list[str]
    acme: dict[str, str]
    globex: dict[str, str]


@pytest.fixture
async def notar(topology: LoopbackCluster) -> AsyncIterator[TopologyNotar]:
    store = await topology.pods.open_store()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as session:
        client = BalancedClient(topology.url, session)
        keys = await (await client.get("/v1/keys")).json()
        try:
            yield TopologyNotar(
                client,
                store,
                trusted_keys(keys),
                {"Authorization": f"Bearer {topology.pods.api_keys['acme']}"},
                {"Authorization": f"Bearer {topology.pods.api_keys['globex']}"},
            )
        finally:
            await store.close()


async def s3_store(topology: LoopbackCluster) -> S3Store:
    """The deployment's bucket, opened afresh as an auditor would."""
    assert topology.pods.bucket is not None
    return await S3Store.from_config(topology.pods.bucket.config(topology.pods.prefix))


# -- the topology itself -------------------------------------------------------------------------


async def test_each_ingest_notarizes_and_each_verify_serves_every_receipt(topology: LoopbackCluster) -> None:
    acme = topology.pods.api_keys["acme"]
    made: dict[str, Receipt] = {}
    for pod in topology.pods.of("ingest"):
        async with NotarClient(pod.url, acme) as c:
            digests = [f"sha256:{os.urandom(32).hex()}" for _ in range(50)]  # new to the log
            made |= dict(zip(digests, await c.notarize(digests), strict=True))
    for pod in topology.pods.of("verify"):
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


async def test_a_document_stored_through_one_ingest_is_served_by_the_other(topology: LoopbackCluster) -> None:
    first, second = topology.pods.of("ingest")
    data = os.urandom(5 * 1024 * 1024 + 17)

    async def body() -> AsyncIterator[bytes]:
        for at in range(0, len(data), 1 << 20):
            yield data[at : at + (1 << 20)]

    async with (
        NotarClient(first.url, topology.pods.api_keys["acme"]) as a,
        NotarClient(second.url, topology.pods.api_keys["acme"]) as b,
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


async def test_one_log_seen_alike_by_every_pod(topology: LoopbackCluster) -> None:
    anchor = topology.pods.of("anchor")[0]
    async with aiohttp.ClientSession() as s:
        async with NotarClient(topology.pods.of("ingest")[0].url, topology.pods.api_keys["acme"]) as c:
            await c.notarize([f"blake3:{os.urandom(32).hex()}"])
        async with asyncio.timeout(30):
            while True:
                size = await metric(s, anchor.url, "notar_tree_size")
                notes = set()
                for pod in topology.pods.of("verify"):
                    async with s.get(pod.url + "/log/checkpoint") as r:
                        notes.add(await r.text())
                sizes = {parse_checkpoint(parse_note(n).text).size for n in notes}
                if len(notes) == 1 and sizes == {size}:
                    break
                await asyncio.sleep(0.2)
        store = await s3_store(topology)
        try:
            assert (await store.get("log/checkpoint")).decode() == notes.pop(), (
                "the bucket holds the same bytes"
            )
        finally:
            await store.close()
        assert await metric(s, anchor.url, "notar_entries_sequenced_total") == size
        assert await metric(s, anchor.url, "notar_publication_lag_entries") == 0
        for pod in topology.pods.of("ingest"):
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
    topology: LoopbackCluster,
) -> None:
    digest = f"sha256:{os.urandom(32).hex()}"
    async with NotarClient(topology.pods.of("ingest")[1].url, topology.pods.api_keys["acme"]) as c:
        first = (await c.notarize([digest]))[0]
    assert first.anchors == ()
    for pod in topology.pods.of("verify"):
        async with NotarClient(pod.url, topology.pods.api_keys["acme"]) as v:
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


async def test_one_request_is_no_contiguous_run_and_interleaves_with_another(
    topology: LoopbackCluster,
) -> None:
    """Two 1,000-digest requests through the two ingest pods and the internal wire: in one batch
    (same checkpoint), their entries interleave; placed in request order they would be two runs.
    The chance that uniform random placement gives fewer than 400 switches between them is
    below 10^-100; that either request comes out sorted, 1/1000!."""
    first, second = topology.pods.of("ingest")
    async with (
        NotarClient(first.url, topology.pods.api_keys["acme"]) as a,
        NotarClient(second.url, topology.pods.api_keys["globex"]) as b,
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
    topology: LoopbackCluster,
) -> None:
    digests = [f"{('sha256', 'blake3')[k % 2]}:{os.urandom(32).hex()}" for k in range(300)]
    async with NotarClient(topology.pods.of("ingest")[0].url, topology.pods.api_keys["acme"]) as c:
        receipts = await c.notarize(digests)
    size = receipts[0].tree_size
    store = await s3_store(topology)
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
            async with session.get(topology.pods.of("verify")[0].url + "/" + key) as r:
                assert r.headers["Cache-Control"] == want, key  # the verify pods answer the same
    finally:
        await session.close()
        await store.close()


# -- the load balancer in front -------------------------------------------------------------------------


async def served(topology: LoopbackCluster, backend: str, at_least: int) -> dict[str, int]:
    """Requests haproxy logged as answered 200 by each server of ``backend``, once it logged
    ``at_least`` in all (it writes each line after the answer went out)."""
    async with asyncio.timeout(10):
        while True:
            counts = served_by(topology.balancer.log.read_text())
            mine = {srv: n for (b, srv, status), n in counts.items() if b == backend and status == 200}
            if sum(mine.values()) >= at_least:
                return mine
            await asyncio.sleep(0.1)


async def test_the_load_balancer_spreads_each_route_over_both_pods(topology: LoopbackCluster) -> None:
    before = {b: await served(topology, b, 0) for b in ("ingest", "verify")}
    async with NotarClient(topology.url, topology.pods.api_keys["acme"]) as c:
        for _ in range(8):
            await c.notarize([f"sha256:{os.urandom(32).hex()}"])
            await c.keys()
    for backend in ("ingest", "verify"):
        total = sum(before[backend].values()) + 8
        after = await served(topology, backend, total)
        grew = {srv for srv, n in after.items() if n > before[backend].get(srv, 0)}
        assert grew == {f"{backend}0", f"{backend}1"}, (backend, before[backend], after)


async def test_a_killed_ingest_pod_costs_no_request_and_is_used_again_once_back(
    topology: LoopbackCluster,
) -> None:
    victim = topology.pods.of("ingest")[0]
    victim.kill9()  # nothing in flight: haproxy retries the refused connection on the other pod
    try:
        async with NotarClient(topology.url, topology.pods.api_keys["acme"]) as c:
            for _ in range(10):
                assert len(await c.notarize([f"sha256:{os.urandom(32).hex()}"])) == 1
    finally:
        victim.start()
        await asyncio.to_thread(victim.wait_ready)
    before = (await served(topology, "ingest", 0)).get("ingest0", 0)
    async with NotarClient(topology.url, topology.pods.api_keys["acme"]) as c, asyncio.timeout(30):
        while (await served(topology, "ingest", 0)).get("ingest0", 0) == before:  # health check: rise 1
            await c.notarize([f"sha256:{os.urandom(32).hex()}"])
            await asyncio.sleep(0.2)
