"""A receipt fetched after anchoring comes upgraded: a later checkpoint, a fresh proof, its anchors."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from merkle import verify_receipt
from merkle.anchors import offline_anchor_verifiers
from services.anchor.app import ensure_keys, keys_from
from services.cli.serve import build_app
from services.common.resources import TENANTS
from tests.services.conftest import config_for


async def test_receipts_upgrade_once_anchored(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    config, env = config_for("fs", tmp_path, request, ANCHOR_INTERVAL_S="1")
    ensure_keys(config.keys)
    keys = list(keys_from(config.keys).verifier_keys.values())
    app = build_app("all", config, env)
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        auth = {"Authorization": f"Bearer {await app[TENANTS].add('acme')}"}
        digest = "sha256:" + "11" * 32
        r = await client.post("/v1/digests", json={"digests": [digest]}, headers=auth)
        first = (await r.json())["receipts"][0]
        assert first["anchors"] == []
        for _ in range(20):  # a few more batches, so the anchored tree is larger than the first
            await client.post("/v1/digests", json={"digests": ["sha256:" + "22" * 32]}, headers=auth)
        upgraded = None
        for _ in range(100):
            got = await (await client.get(f"/v1/receipts/{digest}", headers=auth)).json()
            if got["anchors"]:
                upgraded = got
                break
            await asyncio.sleep(0.1)
        assert upgraded is not None, "no anchored receipt within 10 s"
        assert upgraded["entry"] == first["entry"] and upgraded["log"]["index"] == first["log"]["index"]
        assert (upgraded["salt"], upgraded["subject"]) == (first["salt"], "acme")
        assert upgraded["log"]["tree_size"] >= first["log"]["tree_size"]
        assert [a["type"] for a in upgraded["anchors"]] == ["local"]
        result = verify_receipt(
            upgraded, keys=keys, digest=digest, anchor_verifiers=offline_anchor_verifiers(keys=keys)
        )
        assert result.valid, result.failed
        assert result.check("anchor 1 (local)") is not None
        served = await (await client.post("/v1/verify", json={"receipt": upgraded, "digest": digest})).json()
        anchor_check = next(c for c in served["checks"] if c["name"] == "anchor 1 (local)")
        assert served["valid"] and anchor_check["status"] == "ok" and "block" in anchor_check["detail"]
        assert served["unchecked"] == []
        upgraded["anchors"][0]["root"] = "00" * 32
        bad = await (await client.post("/v1/verify", json={"receipt": upgraded, "digest": digest})).json()
        failed = [c["name"] for c in bad["checks"] if c["status"] == "failed"]
        assert not bad["valid"] and failed == ["anchor 1 (local)"]
        ready = await (await client.get("/readyz")).text()
        assert "anchor local" in ready
    finally:
        await client.close()
