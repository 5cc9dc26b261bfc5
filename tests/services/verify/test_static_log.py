"""The `/log/` routes as a static file server (services/verify/static.py): strong ETags and 304,
Cache-Control per kind of object, the cache's byte bound, and the same bytes whether a directory
store sends a file with sendfile, from memory, or a SeaweedFS bucket serves it."""

from __future__ import annotations

import asyncio
import logging
import os
import re
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from merkle.checkpoint import parse_checkpoint
from merkle.note import parse_note
from merkle.tiles import tiles_for_size
from services.anchor.app import ensure_keys
from services.cli.serve import build_app
from services.common.logs import AccessLogger
from services.common.resources import TENANTS
from services.common.stores import open_store
from services.common.telemetry import TELEMETRY, Telemetry
from services.published import layout
from services.verify.app import LOG_FILES
from services.verify.static import Held, ImmutableCache, content_etag
from tests.services.conftest import Notar, config_for
from tests.serving import notar_serve

ENTRIES = 300  # one full level-0 tile and bundle, and a partial of each


async def published(notar: Notar, entries: int = ENTRIES) -> int:
    """Notarize `entries` digests, then wait for a checkpoint covering them: its size."""
    digests = [f"sha256:{os.urandom(32).hex()}" for _ in range(entries)]
    r = await notar.client.post("/v1/digests", json={"digests": digests}, headers=notar.acme)
    assert r.status == 200, await r.text()
    for _ in range(200):
        cp = parse_checkpoint(parse_note(await (await notar.client.get("/log/checkpoint")).text()).text)
        if cp.size >= entries:
            return cp.size
        await asyncio.sleep(0.05)
    raise AssertionError("the checkpoint was not published")


def files(notar: Notar) -> Any:
    app = notar.client.app
    assert app is not None
    return app[LOG_FILES]


@pytest.mark.parametrize("notar", ["fs", "s3"], indirect=True)
async def test_etags_304_and_cache_control_per_kind(notar: Notar) -> None:
    size = await published(notar)
    c = notar.client
    partial = next(t for t in tiles_for_size(size) if t.partial)
    for tile in ("tile/0/000", "tile/entries/000", partial.path):
        first = await c.get("/log/" + tile)
        body = await first.read()
        assert first.status == 200 and body == await notar.store.get("log/" + tile)
        assert first.headers["Cache-Control"] == layout.IMMUTABLE
        assert first.headers["Content-Type"] == "application/octet-stream"
        etag = first.headers["ETag"]
        assert etag.startswith('"') and etag.endswith('"')  # strong
        for _ in range(2):  # from the store (or a file), then from memory: one ETag
            again = await c.get("/log/" + tile)
            assert again.headers["ETag"] == etag and await again.read() == body
        for asked in (etag, "W/" + etag, f'"nope", {etag}', "*"):
            not_modified = await c.get("/log/" + tile, headers={"If-None-Match": asked})
            assert not_modified.status == 304, asked
            assert not_modified.headers["ETag"] == etag and await not_modified.read() == b""
        changed = await c.get("/log/" + tile, headers={"If-None-Match": '"something-else"'})
        assert changed.status == 200 and await changed.read() == body
    cp = await c.get("/log/checkpoint")
    assert cp.headers["Cache-Control"] == layout.CHECKPOINT_CACHE == "public, max-age=2"
    assert cp.headers["ETag"] == content_etag(await cp.read())
    assert (await c.get("/log/checkpoint", headers={"If-None-Match": cp.headers["ETag"]})).status == 304


@pytest.mark.parametrize("notar", ["fs"], indirect=True)
async def test_a_directory_sends_a_file_first_and_keeps_it_once_asked_again(notar: Notar) -> None:
    await published(notar)
    c, cache = notar.client, files(notar).cache
    assert files(notar).root is not None
    first = await c.get("/log/tile/0/000")
    assert "Last-Modified" in first.headers  # FileResponse: sendfile from the directory
    assert cache.get("log/tile/0/000") is None  # one read does not take memory
    second = await c.get("/log/tile/0/000")
    assert "Last-Modified" not in second.headers and cache.get("log/tile/0/000") is not None
    assert await first.read() == await second.read()
    assert first.headers["ETag"] == second.headers["ETag"]


@pytest.mark.parametrize("notar", ["fs", "s3"], indirect=True)
async def test_missing_tiles_are_404_problems_and_unpublished_ones_are_waited_for(notar: Notar) -> None:
    size = await published(notar)
    c = notar.client
    for path in ("/log/tile/0/1", "/log/tile/0/%2e%2e/x", "/log/tile/0/000/x", "/log/7/tile/0/000"):
        r = await c.get(path)
        assert r.status == 404 and r.content_type == "application/problem+json", path
    started = asyncio.get_running_loop().time()
    r = await c.get(f"/log/tile/0/{(size + 256) // 256:03d}")  # a tree nobody signed: waits, then 404
    assert r.status == 404 and asyncio.get_running_loop().time() - started >= 1.9
    # a tile asked before it is published is answered once it is (SPEC §2)
    digests = [f"sha256:{os.urandom(32).hex()}" for _ in range(256)]
    later = asyncio.ensure_future(c.get(f"/log/tile/0/00{(size + 256) // 256 - 1}"))
    sent = await c.post("/v1/digests", json={"digests": digests}, headers=notar.acme)
    assert sent.status == 200
    assert (await later).status == 200


def test_the_cache_keeps_its_byte_bound_least_recently_used_out_first() -> None:
    cache = ImmutableCache(10 * 8192)
    tiles = {f"log/tile/0/{i:03d}": os.urandom(8192) for i in range(30)}
    for n, (key, data) in enumerate(tiles.items()):
        cache.put(key, Held.of(data, content_etag(data)))
        if n == 5:
            assert cache.get("log/tile/0/000") is not None  # used: it stays longer
        assert cache.bytes <= cache.max_bytes
    assert len(cache) == 10 and cache.evictions == 20 and cache.bytes == 10 * 8192
    assert cache.get("log/tile/0/001") is None and cache.get("log/tile/0/029") is not None
    held = cache.get("log/tile/0/025")
    assert held is not None and held.data == tiles["log/tile/0/025"]
    big = os.urandom(cache.max_bytes // 8 + 1)
    cache.put("log/tile/entries/000", Held.of(big, content_etag(big)))  # too big to keep
    assert cache.get("log/tile/entries/000") is None and len(cache) == 10
    nothing = ImmutableCache(0)
    nothing.put("log/tile/0/000", Held.of(b"x" * 32, content_etag(b"x" * 32)))
    assert len(nothing) == 0


@pytest.mark.parametrize("notar", ["fs"], indirect=True)
async def test_the_served_cache_stays_within_tile_cache_mb(notar: Notar, tmp_path: Path) -> None:
    size = await published(notar, 256 * 10 + 10)
    cache = files(notar).cache
    cache.max_bytes = 72 * 1024  # 8 tiles or bundles (TILE_CACHE_MB counts whole MiB)
    paths = [t.path for t in tiles_for_size(size)] + [t.path for t in tiles_for_size(size, entries=True)]
    for _ in range(2):  # asked twice: a directory's file is kept the second time
        for path in paths:
            r = await notar.client.get("/log/" + path)
            assert r.status == 200 and await r.read() == await notar.store.get("log/" + path)
            assert cache.bytes <= cache.max_bytes
    assert cache.evictions > 0 and 0 < len(cache) < len(paths)


@pytest.mark.parametrize("notar", ["fs"], indirect=True)
async def test_a_directory_and_a_seaweedfs_bucket_serve_the_same_bytes(
    notar: Notar, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """The same published log copied into SeaweedFS and served by a verify-only app: every tile,
    bundle and the checkpoint are the same bytes as the directory's (by sendfile, then memory)."""
    size = await published(notar, 256 + 40)
    config, env = config_for("s3", tmp_path, request)
    bucket = await open_store(config.store, env)
    try:
        async for key in notar.store.list(layout.LOG_PREFIX):
            await bucket.put(key, await notar.store.get(key))
        await bucket.put(layout.keys_key(), await notar.store.get(layout.keys_key()))
    finally:
        await bucket.close()
    app = build_app("verify", config, env)
    s3 = TestClient(TestServer(app))
    await s3.start_server()
    try:
        assert app[LOG_FILES].root is None  # not a directory: from the bucket, then memory
        paths = ["checkpoint"] + [t.path for t in tiles_for_size(size)]
        paths += [t.path for t in tiles_for_size(size, entries=True)]
        for _ in range(2):
            for path in paths:
                from_dir = await notar.client.get("/log/" + path)
                from_bucket = await s3.get("/log/" + path)
                assert from_dir.status == from_bucket.status == 200, path
                assert await from_dir.read() == await from_bucket.read(), path
                assert from_dir.headers["Cache-Control"] == from_bucket.headers["Cache-Control"]
    finally:
        await s3.close()


@pytest.mark.parametrize("notar", ["fs"], indirect=True)
async def test_static_answers_are_counted(notar: Notar) -> None:
    """The log's files are counted in notar_http_requests (added at the latest by the scrape),
    304s and 404s included."""
    await published(notar)
    c = notar.client
    etag = (await c.get("/log/tile/0/000")).headers["ETag"]
    for _ in range(4):
        assert (await c.get("/log/tile/0/000")).status == 200
    assert (await c.get("/log/tile/0/000", headers={"If-None-Match": etag})).status == 304
    assert (await c.get("/log/tile/0/1")).status == 404
    text = await (await c.get("/metrics")).text()
    route = 'method="GET",route="/log/tile/{path}"'
    assert f'notar_http_requests_total{{{route},status="200"}} 5' in text
    assert f'notar_http_requests_total{{{route},status="304"}} 1' in text
    assert f'notar_http_requests_total{{{route},status="404"}} 1' in text
    assert 'notar_http_requests_total{method="GET",route="/log/checkpoint",status="200"}' in text


async def test_notar_serve_answers_held_tiles_before_routing_as_the_routes_do(tmp_path: Path) -> None:
    """`notar serve` answers a tile held in memory before routing (services/common/http_server.py
    EARLY_ANSWERS): the same bytes and headers (nosniff included), 304, and counted."""
    with notar_serve(tmp_path, "early.notar.test/log") as server:
        async with aiohttp.ClientSession() as s:
            digests = [f"sha256:{os.urandom(32).hex()}" for _ in range(300)]
            auth = {"Authorization": f"Bearer {server.env['NOTAR_API_KEY']}"}
            async with s.post(server.url + "/v1/digests", json={"digests": digests}, headers=auth) as r:
                assert r.status == 200
            for _ in range(200):
                async with s.get(server.url + "/log/tile/0/000") as r:
                    if r.status == 200:
                        break
                await asyncio.sleep(0.05)
            answers = []
            for _ in range(4):  # a file, then read into memory, then held: answered early
                async with s.get(server.url + "/log/tile/0/000") as r:
                    answers.append((r.status, await r.read(), r.headers))
            assert len({body for _, body, _ in answers}) == 1 and answers[-1][0] == 200
            held = answers[-1][2]
            assert held["X-Content-Type-Options"] == "nosniff" and held["Cache-Control"] == layout.IMMUTABLE
            assert {h["ETag"] for _, _, h in answers} == {held["ETag"]} and "Last-Modified" not in held
            async with s.get(server.url + "/log/tile/0/000", headers={"If-None-Match": held["ETag"]}) as r:
                assert r.status == 304 and r.headers["X-Content-Type-Options"] == "nosniff"
            async with s.get(server.url + "/log/tile/0/009") as r:
                assert r.status == 404 and r.content_type == "application/problem+json"
            async with s.get(server.url + "/metrics") as r:
                text = await r.text()
            route = 'method="GET",route="/log/tile/{path}"'
            assert f'notar_http_requests_total{{{route},status="304"}} 1' in text
            assert f'notar_http_requests_total{{{route},status="404"}} 1' in text
            counted = re.search(rf'notar_http_requests_total{{{re.escape(route)},status="200"}} (\d+)', text)
            assert counted is not None and int(counted.group(1)) >= 5


async def test_static_answers_make_no_span_and_no_access_line_unless_they_fail(
    tmp_path: Path, request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture
) -> None:
    spans = InMemorySpanExporter()
    config, env = config_for("fs", tmp_path, request)
    ensure_keys(config.keys)
    app = build_app("all", config, env)
    app[TELEMETRY] = Telemetry(span_processors=[SimpleSpanProcessor(spans)])
    server = TestServer(app)
    caplog.set_level(logging.INFO, "aiohttp.access")  # before the first connection: each reads it once
    await server.start_server(access_log_class=AccessLogger)
    c = TestClient(server)
    await c.start_server()
    try:
        key = await app[TENANTS].add("acme")
        digests = [f"sha256:{os.urandom(32).hex()}" for _ in range(300)]
        r = await c.post("/v1/digests", json={"digests": digests}, headers={"Authorization": f"Bearer {key}"})
        assert r.status == 200
        for path in ("/log/checkpoint", "/log/tile/0/000", "/log/tile/0/000", "/v1/keys"):
            assert (await c.get(path)).status == 200, path
        assert (await c.get("/log/tile/0/1")).status == 404
    finally:
        await c.close()
    routes = [line.getMessage().split()[:3] for line in caplog.records if line.name == "aiohttp.access"]
    assert routes == [
        ["POST", "/v1/digests", "200"],
        ["GET", "/v1/keys", "200"],
        ["GET", "/log/tile/{path}", "404"],
    ]
    names = {s.name for s in spans.get_finished_spans()}
    assert "GET /v1/keys" in names and not any(n.startswith("GET /log/") for n in names), names
