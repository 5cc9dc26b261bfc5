"""DATA_DIR is created private (0700): it holds the keys, the tenant index and, on the embedded
default (STORE=fs), every tenant's documents.

Regression: `notar serve` created DATA_DIR 0755 and the store's files 0644, so on a shared host
any local user could read every tenant's documents and the tenant index (only keys/ was 0700).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer

from services.anchor.app import ensure_keys
from services.cli.serve import build_app
from services.common.components import load
from services.common.resources import TENANTS
from services.common.stores import open_index, open_store


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_notar_serve_creates_a_private_data_dir(tmp_path: Path) -> None:
    data = tmp_path / "deep" / "notar-data"
    config = load(flags={"DATA_DIR": str(data), "BATCH_MS": "10"}, env={}, config_file=None)
    old = os.umask(0o022)
    try:
        ensure_keys(config.keys)
        client = TestClient(TestServer(build_app("all", config, {})))
        await client.start_server()
        try:
            assert client.app is not None
            key = await client.app[TENANTS].add("acme")
            r = await client.put(
                "/v1/documents", data=b"a contract", headers={"Authorization": f"Bearer {key}"}
            )
            assert r.status == 201, await r.text()
        finally:
            await client.close()
    finally:
        os.umask(old)
    assert mode(data) == 0o700, oct(mode(data))
    assert (data / "store" / "documents" / "manifests").is_dir(), "the document is under DATA_DIR"
    assert mode(data / "keys" / "index.key") == 0o600


async def test_store_and_index_alone_create_it_private(tmp_path: Path) -> None:
    for opener in ("store", "index"):
        data = tmp_path / opener
        config = load(flags={"DATA_DIR": str(data)}, env={}, config_file=None)
        if opener == "store":
            await (await open_store(config.store, {})).close()
        else:
            await open_index(config.store).close()
        assert mode(data) == 0o700, (opener, oct(mode(data)))


def test_an_existing_data_dir_keeps_its_mode(tmp_path: Path) -> None:
    data = tmp_path / "shared"
    data.mkdir(mode=0o750)
    data.chmod(0o750)
    ensure_keys(load(flags={"DATA_DIR": str(data)}, env={}, config_file=None).keys)
    assert mode(data) == 0o750 and mode(data / "keys") == 0o700
