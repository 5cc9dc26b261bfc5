"""Proofs from tiles (services/tile_proofs.py, issue 18 item 4): the SDK computes the same
inclusion and consistency proofs as `/v1/proofs` from the log's files when that route cannot be
reached — behind a proxy without it, with nothing listening, and from a plain static server of
the store's directory — and still refuses a bad question."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from merkle.checkpoint import parse_checkpoint
from merkle.note import parse_note
from services.sdk import ApiError, NotarClient
from services.tile_proofs import TileLog, TileLogError
from storage.fs import FsStore
from tests.seaweed import free_ports
from tests.services.conftest import Notar
from tests.services.proxy import proxy
from tests.serving import notar_serve


async def grown(notar: Notar) -> list[int]:
    """A log grown by batches of different sizes: each batch's checkpoint size, once published."""
    sizes = []
    for count in (3, 250, 1, 300, 700):
        digests = [f"sha256:{random.randbytes(32).hex()}" for _ in range(count)]
        r = await notar.client.post("/v1/digests", json={"digests": digests}, headers=notar.acme)
        assert r.status == 200
        sizes.append((await r.json())["receipts"][-1]["log"]["tree_size"])
    for _ in range(200):
        text = await (await notar.client.get("/log/checkpoint")).text()
        if parse_checkpoint(parse_note(text).text).size >= sizes[-1]:
            return sizes
        await asyncio.sleep(0.05)
    raise AssertionError("not published")


def questions(sizes: list[int]) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """(index, size) and (from, to) pairs: at checkpoint sizes and between them, edges included."""
    rng = random.Random(18)
    top = sizes[-1]
    ends = sorted({*sizes, 1, 2, 255, 256, 257, 511, 512, 513, top - 1, *rng.sample(range(1, top), 12)})
    inclusions = [(i, n) for n in ends for i in {0, n - 1, n // 2, rng.randrange(n)}]
    consistencies = [(m, n) for n in ends for m in {0, 1, n, n // 3, rng.randrange(1, n + 1)} if m <= n]
    return inclusions, consistencies


async def expected(
    c: NotarClient, inclusions: list[tuple[int, int]], cons: list[tuple[int, int]]
) -> list[list[str]]:
    return [await c.inclusion_proof(i, n) for i, n in inclusions] + [
        await c.consistency_proof(m, n) for m, n in cons
    ]


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.mark.parametrize("notar", ["fs"], indirect=True)
async def test_proofs_from_tiles_equal_v1_proofs_wherever_the_tiles_come_from(
    notar: Notar, session: aiohttp.ClientSession
) -> None:
    sizes = await grown(notar)
    inclusions, cons = questions(sizes)
    url = str(notar.client.make_url("")).rstrip("/")
    async with NotarClient(url) as direct:
        want = await expected(direct, inclusions, cons)
    assert len(want) == len(inclusions) + len(cons) and any(len(p) > 8 for p in want)

    proxies = [TestServer(proxy(url, session, missing=status)) for status in (404, 502)]
    store = notar.store
    root = getattr(store, "inner", store)
    assert isinstance(root, FsStore)
    static = web.Application()
    static.router.add_static("/bucket/", root.root)  # the store's directory as any web server has it
    plain = TestServer(static)
    for server in (*proxies, plain):
        await server.start_server()
    (refused,) = free_ports(1)
    try:
        clients = [NotarClient(str(p.make_url("")).rstrip("/")) for p in proxies]
        clients += [
            NotarClient(f"http://127.0.0.1:{refused}", tiles=url + "/log/"),  # nothing listens
            NotarClient(f"http://127.0.0.1:{refused}", tiles=str(plain.make_url("/bucket/log/"))),
        ]
        for client in clients:
            async with client:
                assert await expected(client, inclusions, cons) == want, client.tiles
    finally:
        for server in (*proxies, plain):
            await server.close()


@pytest.mark.parametrize("notar", ["fs", "s3"], indirect=True)
async def test_tile_proofs_verify_and_bad_questions_stay_refused(
    notar: Notar, session: aiohttp.ClientSession
) -> None:
    sizes = await grown(notar)
    url = str(notar.client.make_url("")).rstrip("/")
    tiles = TileLog(session, url + "/log/")
    text = await (await notar.client.get("/log/checkpoint")).text()
    cp = parse_checkpoint(parse_note(text).text)
    r = await notar.client.get(f"/v1/proofs/inclusion?index=7&size={cp.size}")
    assert [h.hex() for h in await tiles.inclusion_proof(7, cp.size)] == (await r.json())["proof"]
    proof = await tiles.consistency_proof(sizes[1], cp.size)
    r = await notar.client.get(f"/v1/proofs/consistency?from={sizes[1]}&to={cp.size}")
    assert [h.hex() for h in proof] == (await r.json())["proof"]
    async with NotarClient(url) as client:
        with pytest.raises(ApiError) as bad:
            await client.inclusion_proof(5, 5)  # a 400 is an answer, not "unreachable"
        assert bad.value.status == 400
    started = asyncio.get_running_loop().time()
    (refused,) = free_ports(1)
    async with NotarClient(f"http://127.0.0.1:{refused}", tiles=url + "/log/") as offline:
        with pytest.raises(ApiError) as unpublished:
            await offline.inclusion_proof(0, cp.size + 1000)
        assert unpublished.value.status == 404 and unpublished.value.kind == "not-found"
        assert asyncio.get_running_loop().time() - started >= 1.9  # waited for that tree, as /v1 does
        with pytest.raises(ApiError) as other:
            await offline.inclusion_proof(0, 3, origin="elsewhere.example/log")
        assert other.value.status == 404


async def test_each_shard_s_proofs_come_from_its_own_tiles(tmp_path: Path) -> None:
    """With `--shards 3`, the origin of shard i names its tiles under `/log/<i>/`."""
    origin = "tiles.shards.test/log"
    with notar_serve(tmp_path, origin, SHARDS="3") as served:
        async with aiohttp.ClientSession() as s, NotarClient(served.url, served.env["NOTAR_API_KEY"]) as c:
            receipts = await c.notarize([f"sha256:{random.randbytes(32).hex()}" for _ in range(1200)])
            sizes: dict[str, int] = {}
            for r in receipts:
                sizes[r.origin] = max(sizes.get(r.origin, 0), r.tree_size)
            assert set(sizes) == {origin, f"{origin}/1", f"{origin}/2"}
            (refused,) = free_ports(1)
            offline = NotarClient(f"http://127.0.0.1:{refused}", tiles=served.url + "/log/")
            async with offline:
                for name, size in sizes.items():
                    for index in (0, size // 2, size - 1):
                        want = await c.inclusion_proof(index, size, name)
                        assert await offline.inclusion_proof(index, size, name) == want
                    want = await c.consistency_proof(size // 3, size, name)
                    assert await offline.consistency_proof(size // 3, size, name) == want
            tiles = TileLog(s, served.url + "/log/")
            with pytest.raises(TileLogError) as other:
                await tiles.inclusion_proof(0, 1, f"{origin}/9")
            assert other.value.status == 404
