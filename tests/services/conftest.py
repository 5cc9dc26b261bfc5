"""A running `notar serve` app (all roles in one process) on the fs store or on SeaweedFS."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from services.anchor.app import ensure_keys, keys_from
from services.cli.serve import build_app
from services.common.components import NotarConfig, load
from services.common.resources import STORE, TENANTS
from storage.base import ObjectStore
from tests.seaweed import S3Target

ORIGIN = "api.notar.test/log"


@dataclass
class Notar:
    client: TestClient  # type: ignore[type-arg]
    config: NotarConfig
    keys: list[str]
    acme: dict[str, str]
    globex: dict[str, str]

    @property
    def store(self) -> ObjectStore:
        app: web.Application | None = self.client.app
        assert app is not None
        return app[STORE]


def config_for(
    kind: str, tmp: Path, request: pytest.FixtureRequest, **extra: str
) -> tuple[NotarConfig, dict[str, str]]:
    flags = {"DATA_DIR": str(tmp), "ORIGIN": ORIGIN, "BATCH_MS": "10", **extra}
    env: dict[str, str] = {}
    if kind == "s3":
        target: S3Target = request.getfixturevalue("s3_target")
        flags |= {
            "STORE": "s3",
            "S3_ENDPOINT": target.endpoint,
            "S3_BUCKET": target.bucket,
            "S3_PREFIX": f"t-{uuid.uuid4().hex[:12]}/",
            "S3_REGION": target.region,
        }
        env = {"AWS_ACCESS_KEY_ID": target.access_key, "AWS_SECRET_ACCESS_KEY": target.secret_key}
    return load(flags=flags, env={}, config_file=None), env


@asynccontextmanager
async def serving(config: NotarConfig, env: dict[str, str]) -> AsyncIterator[tuple[TestClient, str]]:  # type: ignore[type-arg]
    """`notar serve` of `config` on a test server, and the API key of its tenant `acme`."""
    ensure_keys(config.keys)
    app = build_app("all", config, env)
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        yield client, await app[TENANTS].add("acme")
    finally:
        await client.close()


@pytest.fixture(params=["fs", "s3"])
async def notar(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Notar]:
    config, env = config_for(request.param, tmp_path, request)
    ensure_keys(config.keys)
    keys = keys_from(config.keys)
    app = build_app("all", config, env)
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        tenants = app[TENANTS]
        acme = {"Authorization": f"Bearer {await tenants.add('acme')}"}
        globex = {"Authorization": f"Bearer {await tenants.add('globex')}"}
        yield Notar(client, config, list(keys.verifier_keys.values()), acme, globex)
    finally:
        await client.close()
