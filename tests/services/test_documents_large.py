"""Documents of any size in constant memory; slow clients are cut off."""

from __future__ import annotations

import asyncio
import hashlib
import os
import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path

import blake3
from aiohttp.test_utils import TestClient, TestServer

from services.anchor.app import ensure_keys
from services.cli.serve import build_app
from services.common.components import load
from services.common.resources import TENANTS

GIB = 1024**3


async def _client(tmp_path: Path, **flags: str) -> tuple[TestClient, dict[str, str]]:  # type: ignore[type-arg]
    flags = {"DATA_DIR": str(tmp_path), "BATCH_MS": "5", **flags}
    config = load(flags=flags, env={}, config_file=None)
    ensure_keys(config.keys)
    app = build_app("all", config, {})
    client = TestClient(TestServer(app))
    await client.start_server()
    key = await app[TENANTS].add("acme")
    return client, {"Authorization": f"Bearer {key}"}


async def test_two_gib_upload_in_constant_memory(tmp_path: Path) -> None:
    block = os.urandom(1024 * 1024)
    total = 2 * GIB + 12345  # not a multiple of the chunk size
    b3, sha = blake3.blake3(max_threads=blake3.blake3.AUTO), hashlib.sha256()
    for _ in range(total // len(block)):
        b3.update(block)
        sha.update(block)
    tail = block[: total % len(block)]
    b3.update(tail)
    sha.update(tail)

    async def body() -> AsyncIterator[bytes]:
        for _ in range(total // len(block)):
            yield block
        yield tail

    client, auth = await _client(tmp_path)
    try:
        tracemalloc.start()
        r = await client.put("/v1/documents", data=body(), headers=auth)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert r.status == 201, await r.text()
        doc = (await r.json())["document"]
        assert doc["size"] == total and doc["digest"] == "blake3:" + b3.hexdigest()
        assert doc["sha256"] == sha.hexdigest() and doc["chunks"] == 513
        assert peak < 64 * 1024 * 1024, f"peak traced memory {peak / 2**20:.0f} MiB for a 2 GiB upload"
        # and it streams back, every byte checked
        got = await client.get(f"/v1/documents/{doc['digest']}", headers=auth)
        back = blake3.blake3()
        async for chunk in got.content.iter_chunked(1 << 20):
            back.update(chunk)
        assert "blake3:" + back.hexdigest() == doc["digest"]
    finally:
        await client.close()


async def test_a_stalled_body_is_cut_off(tmp_path: Path) -> None:
    client, auth = await _client(tmp_path, READ_TIMEOUT_S="1")
    try:

        async def slow() -> AsyncIterator[bytes]:
            yield b'{"digests": ['
            await asyncio.sleep(3)
            yield b"]}"

        r = await client.post("/v1/digests", data=slow(), headers=auth)
        assert r.status == 408
        body = await r.json()
        assert body["type"] == "urn:notar:problem:request-timeout" and body["title"] == "Request Timeout"
    finally:
        await client.close()
