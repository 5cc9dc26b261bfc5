"""REPEATS_MAX through the API: `notar serve` (all roles, fs store) and split roles (ingest → the
anchor's internal route over loopback HTTP) answer the same 409 `too-many-repeats` problem, naming
the digest and the cap; a bulk request is refused whole; erasure lets the tenant notarize anew."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import blake3
import pytest
from aiohttp.test_utils import TestClient, TestServer

from services.anchor.app import ensure_keys
from services.cli.serve import build_app
from services.common.components import load
from services.common.resources import TENANTS
from tests.services.conftest import ORIGIN

CAP = 2
Client = TestClient[Any, Any]


def b3() -> str:
    return "blake3:" + blake3.blake3(os.urandom(32)).hexdigest()


@dataclass
class Served:
    ingest: Client  # POST /v1/digests, PUT /v1/documents
    verify: Client  # GET and DELETE /v1/receipts/…
    acme: dict[str, str]


@pytest.fixture(params=["all", "split"])
async def served(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Served]:
    """`notar serve` (one app), or ingest and verify roles in front of an anchor role."""
    base = {"DATA_DIR": str(tmp_path), "ORIGIN": ORIGIN, "BATCH_MS": "10", "ANCHORS": ""}
    config = load(flags={**base, "REPEATS_MAX": str(CAP)}, env={}, config_file=None)
    ensure_keys(config.keys)
    clients: list[Client] = []

    async def start(role: str, flags: dict[str, str]) -> Client:
        app = build_app(role, load(flags=flags, env={}, config_file=None) if flags else config, {})
        client = TestClient(TestServer(app))
        clients.append(client)
        await client.start_server()
        return client

    try:
        if request.param == "all":
            ingest = verify = await start("all", {})
        else:  # the cap is the anchor's: the other roles keep the default
            url = str((await start("anchor", {})).make_url("")).rstrip("/")
            ingest = await start("ingest", {**base, "ANCHOR_URL": url})
            verify = await start("verify", {**base, "ANCHOR_URL": url})
        assert ingest.app is not None
        key = await ingest.app[TENANTS].add("acme")
        yield Served(ingest, verify, {"Authorization": f"Bearer {key}"})
    finally:
        for c in reversed(clients):
            await c.close()


async def notarize(s: Served, digests: list[str]) -> Any:
    return await s.ingest.post("/v1/digests", json={"digests": digests}, headers=s.acme)


async def refused(r: Any, digest: str) -> None:
    assert r.status == 409, await r.text()
    assert r.content_type == "application/problem+json"
    body = await r.json()
    assert body["type"] == "urn:notar:problem:too-many-repeats" and body["status"] == 409
    assert body["digest"] == digest and body["cap"] == CAP
    assert digest in body["detail"] and "REPEATS_MAX" in body["detail"]
    assert "Retry-After" not in r.headers, "waiting does not help"


async def test_repeats_past_the_cap_are_refused_whole(served: Served) -> None:
    s, acme = served, served.acme
    d, other = b3(), b3()
    for _ in range(CAP):
        r = await notarize(s, [d])
        assert r.status == 200, await r.text()
    await refused(await notarize(s, [d]), d)
    await refused(await notarize(s, [other, d]), d)
    r = await s.verify.get(f"/v1/receipts/{other}", headers=acme)
    assert r.status == 404, "nothing of a refused request is notarized"
    r = await s.verify.get(f"/v1/receipts/{d}?all=true", headers=acme)
    assert r.status == 200 and len((await r.json())["receipts"]) == CAP

    # erasure sets the count back: the tenant may notarize the digest anew
    r = await s.verify.delete(f"/v1/receipts/{d}", headers=acme)
    assert r.status == 204, await r.text()
    r = await notarize(s, [other, d, d])
    assert r.status == 200, await r.text()
    await refused(await notarize(s, [d]), d)


async def test_a_document_past_the_cap_is_refused(served: Served) -> None:
    data = os.urandom(1000)
    for _ in range(CAP):
        r = await served.ingest.put("/v1/documents", data=data, headers=served.acme)
        assert r.status == 201, await r.text()
    r = await served.ingest.put("/v1/documents", data=data, headers=served.acme)
    await refused(r, "blake3:" + blake3.blake3(data).hexdigest())
