"""Compact batch answers through the service (SPEC §6, merkle.compact): the anchor's compact
answer expands to its default answer byte for byte; `POST /v1/digests` with the media type
answers it (spread over three shards: one part each), ingest pods get it over the internal
wire, the SDK expands it and refuses a tampered one; curl users still get receipts."""

from __future__ import annotations

import os
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import jsonschema  # type: ignore[import-untyped]  # schemathesis brings it, without stubs
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import given, settings
from hypothesis import strategies as st

from merkle import compact
from merkle.checkpoint import Checkpoint, sign_checkpoint
from merkle.cosignature import CosignatureSigner
from merkle.digests import Digest, make_entries
from merkle.hashing import leaf_hashes
from merkle.note import Signer
from merkle.tiles import TileBuilder
from merkle.tileset import TileSet
from merkle.verdict import verify_receipt
from services.anchor.app import create_app as anchor_app
from services.anchor.app import ensure_keys, keys_from
from services.common.answers import accepts_compact
from services.common.openapi import DOCUMENT
from services.ingest.spread import Spread
from services.internal.client import AnchorClient
from services.internal.wire import encode_answer, encode_compact
from services.model import Digests, SequencedGroup
from services.sdk import NotarClient
from tests.services.conftest import config_for, serving

LOG = Signer.generate("compact.test/log")
CLOCK = CosignatureSigner.generate("compact.test/log/clock")


def _batch(
    before: int, batch: int, mine: int, seed: int, *, compact_nodes: bool = False
) -> tuple[Digests, SequencedGroup]:
    """A sequencer's results for a request of `mine` digests placed at random among `batch`
    entries appended to a tree of `before`, proven as the sequencer proves them (TileSet)."""
    rng = random.Random(seed)
    builder, held = TileBuilder(), TileSet()
    if before:
        held.add(builder.append(leaf_hashes([rng.randbytes(33) for _ in range(before)])))
        held.prune(before)
    digests = [Digest("blake3" if rng.random() < 0.7 else "sha256", rng.randbytes(32)) for _ in range(mine)]
    salts = [rng.randbytes(16) for _ in range(mine)]
    entries = make_entries(digests, salts, "acme")
    others = [rng.randbytes(33) for _ in range(batch - mine)]
    rank = rng.sample(range(batch), batch)  # rank[k]: where the k-th entry of the batch is placed
    placed: list[bytes] = [b""] * batch
    for k, e in enumerate([*entries, *others]):
        placed[rank[k]] = e
    held.add(builder.append(leaf_hashes(placed)))
    size = before + batch
    note = sign_checkpoint(Checkpoint("compact.test/log", size, builder.root()), LOG, CLOCK, 1_700_000_000)
    indices = [before + rank[k] for k in range(mine)]
    # as the sequencer makes a compact caller's result: the nodes off its tiles, no proofs
    nodes = held.nodes(indices, size) if compact_nodes else None
    proofs = None if compact_nodes else held.inclusion_proofs(before, batch, size, order=rank[:mine])
    results = SequencedGroup(
        indices=indices,
        entries=entries,
        salts=b"".join(salts),
        tree_size=size,
        checkpoint=note,
        proofs=proofs,
        nodes=nodes,
    )
    return Digests.parse([str(d) for d in digests]), results


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 3000), st.integers(1, 2000), st.data())
def test_the_anchors_compact_answer_expands_to_its_default_answer(
    before: int, batch: int, data: st.DataObject
) -> None:
    mine = data.draw(st.integers(1, batch))
    seed = data.draw(st.integers(0, 2**32))
    digests, results = _batch(before, batch, mine, seed)
    default = encode_answer(
        origin="compact.test/log", tenant="acme", digests=digests.digests(), results=results
    )
    small = encode_compact(tenant="acme", results=results)
    # written by column (the sequencer's result) or entry by entry: the same bytes
    each = encode_answer(
        origin="compact.test/log", tenant="acme", digests=digests.digests(), results=list(results)
    )
    assert each == default
    # the sequencer's compact result (nodes read off its tiles, no proof per entry) writes the
    # same compact answer, and its receipts made from the nodes the same default answer
    _, nodes_only = _batch(before, batch, mine, seed, compact_nodes=True)
    assert encode_compact(tenant="acme", results=nodes_only) == small
    assert (
        encode_answer(origin="compact.test/log", tenant="acme", digests=digests.digests(), results=nodes_only)
        == default
    )
    receipts = compact.expand(small, list(digests.texts))
    assert b'{"receipts":[' + b",".join(r.to_json() for r in receipts) + b"]}" == default
    assert len(small) < len(default)


@pytest.mark.parametrize(
    ("accept", "wanted"),
    [
        (None, False),
        ("application/json", False),
        ("*/*", False),
        ("application/vnd.notar.batch+json", True),
        ("application/vnd.notar.batch+json, application/json;q=0.5", True),
        ("application/json, application/vnd.notar.batch+json;q=0.5", False),
        ("application/vnd.notar.batch+json;q=0", False),
        ("Application/Vnd.Notar.Batch+JSON", True),
    ],
)
def test_the_accept_header_chooses_the_compact_answer(accept: str | None, wanted: bool) -> None:
    assert accepts_compact(accept) is wanted


@asynccontextmanager
async def anchor_serving(
    tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[tuple[TestServer, list[str]]]:
    """An anchor app (fs store, its keys made) served on loopback, and its verifier keys."""
    config, env = config_for("fs", tmp_path, request)
    ensure_keys(config.keys)
    trusted = list(keys_from(config.keys).verifier_keys.values())
    server = TestServer(anchor_app(config, env=env))
    await server.start_server()
    try:
        yield server, trusted
    finally:
        await server.close()


def _fresh(n: int) -> list[str]:
    return ["blake3:" + os.urandom(32).hex() for _ in range(n)]


@pytest.fixture
async def three_shards(
    tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[tuple[TestClient, str]]:  # type: ignore[type-arg]
    config, env = config_for("fs", tmp_path, request, SHARDS="3")
    async with serving(config, env) as both:
        yield both


async def test_post_digests_answers_compactly_over_three_shards_and_the_sdk_expands_it(
    three_shards: tuple[TestClient, str],  # type: ignore[type-arg]
) -> None:
    client, key = three_shards
    auth = {"Authorization": f"Bearer {key}"}
    digests = _fresh(1200)  # the spreader cuts it over the three shards (parts of 256 or more)
    r = await client.post(
        "/v1/digests", json={"digests": digests}, headers={**auth, "Accept": compact.MEDIA_TYPE}
    )
    assert r.status == 200 and r.content_type == compact.MEDIA_TYPE
    raw = await r.read()
    doc = orjson.loads(raw)
    schema = DOCUMENT["paths"]["/v1/digests"]["post"]["responses"]["200"]["content"][compact.MEDIA_TYPE]
    jsonschema.validate(doc, schema["schema"])  # as /openapi.json documents it
    parts = doc["parts"]
    assert len({p["checkpoint"].split("\n")[0] for p in parts}) == 3, "one checkpoint per shard"
    receipts = compact.expand(raw, digests)
    keys = orjson.loads(await (await client.get("/v1/keys")).read())
    trusted = [k[kind] for k in keys["logs"] for kind in ("log", "clock")]
    for receipt in receipts[::97]:
        assert verify_receipt(receipt, keys=trusted).valid
    # curl users: no Accept header, the default answer
    plain = await client.post("/v1/digests", json={"digests": digests[:3]}, headers=auth)
    assert plain.content_type == "application/json" and len((await plain.json())["receipts"]) == 3
    # the SDK asks for the compact answer and gives receipts
    async with NotarClient(str(client.make_url("/")), key) as sdk:
        got = await sdk.notarize(digests[:500])
        assert [str(r.digest) for r in got] == digests[:500]
        assert verify_receipt(got[499], keys=trusted).valid


async def test_the_sdk_refuses_a_tampered_compact_answer() -> None:
    digests, results = _batch(100, 50, 20, 1)
    honest = encode_compact(tenant="acme", results=results)
    doc = orjson.loads(honest)
    doc["parts"][0]["nodes"] = doc["parts"][0]["nodes"][::-1]
    tampered = orjson.dumps(doc)
    served = {"answer": honest}

    async def digests_route(request: web.Request) -> web.Response:
        assert request.headers["Accept"] == compact.MEDIA_TYPE
        return web.Response(body=served["answer"], content_type=compact.MEDIA_TYPE)

    app = web.Application()
    app.router.add_post("/v1/digests", digests_route)
    server = TestServer(app)
    await server.start_server()
    try:
        async with NotarClient(str(server.make_url("/")), "k") as sdk:
            assert len(await sdk.notarize(list(digests.texts))) == 20
            served["answer"] = tampered
            with pytest.raises(ValueError, match="root"):
                await sdk.notarize(list(digests.texts))
    finally:
        await server.close()


async def test_an_ingest_pod_gets_the_compact_answer_from_the_anchor_over_the_wire(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    async with anchor_serving(tmp_path, request) as (server, trusted):
        client = AnchorClient(str(server.make_url("/")))
        try:
            spread = Spread({0: client})
            digests = _fresh(300)
            raw = await spread.submit("acme", Digests.parse(digests), compact=True)
            receipts = compact.expand(raw, digests)
            assert all(verify_receipt(r, keys=trusted).valid for r in receipts[::50])
            default = await client.submit("acme", Digests.parse(digests[:2]))
            assert default.startswith(b'{"receipts":[')
        finally:
            await client.close()
