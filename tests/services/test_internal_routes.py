"""The anchor's internal routes (no API key) are never on the public port of `notar serve`.

Regression: `notar serve` (all roles in one process) used to add `/internal/v1/entries` to its
public app, so anyone who reached the port could notarize as any tenant without an API key and
read any tenant's indices and salts (a cross-tenant existence oracle). The anchor role keeps them:
there a NetworkPolicy admits only ingest and verify pods (k8s/base/networkpolicies.yaml).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import blake3
import pytest
from aiohttp.test_utils import TestClient, TestServer

from merkle import Receipt, parse_digest
from services.anchor.app import create_app, ensure_keys
from services.common.components import load
from services.internal.client import AnchorClient
from services.internal.wire import decode_found
from services.model import Found
from services.verify.shards import UNKNOWN_TIME, clock_time
from tests.services.conftest import ORIGIN, Notar


def b3(data: bytes) -> str:
    return "blake3:" + blake3.blake3(data).hexdigest()


@pytest.mark.parametrize("notar", ["fs"], indirect=True)
async def test_notar_serve_has_no_unauthenticated_internal_routes(notar: Notar) -> None:
    c = notar.client
    assert c.app is not None
    paths = {r.resource.canonical for r in c.app.router.routes() if r.resource is not None}
    assert not [p for p in paths if p.startswith("/internal")], paths

    digest = b3(os.urandom(32))
    r = await c.post("/v1/digests", json={"digests": [digest]}, headers=notar.acme)
    assert r.status == 200, await r.text()
    index = (await r.json())["receipts"][0]["log"]["index"]

    # The tenant's own lookup, with its key, still finds it ...
    r = await c.get(f"/v1/receipts/{digest}", headers=notar.acme)
    assert r.status == 200 and (await r.json())["log"]["index"] == index
    # ... and nobody gets its salt or index, or notarizes as acme, without a key.
    r = await c.get("/internal/v1/entries", params={"tenant": "acme", "digest": digest})
    assert r.status == 404 and r.content_type == "application/problem+json"
    assert "salt" not in await r.text()
    digests = [b3(os.urandom(32))]
    r = await c.post("/internal/v1/entries", json={"tenant": "acme", "digests": digests})
    assert r.status == 404 and r.content_type == "application/problem+json"
    r = await c.get(f"/v1/receipts/{digests[0]}", headers=notar.acme)
    assert r.status == 404, "nothing was notarized in acme's name"


@pytest.fixture
async def anchor_role(tmp_path: Path) -> AsyncIterator[TestClient]:  # type: ignore[type-arg]
    """`notar serve --role anchor`: its internal routes, no API key."""
    config = load(
        flags={"DATA_DIR": str(tmp_path), "ORIGIN": ORIGIN, "BATCH_MS": "10", "ANCHORS": ""},
        env={},
        config_file=None,
    )
    ensure_keys(config.keys)
    client = TestClient(TestServer(create_app(config, env={})))
    await client.start_server()
    try:
        yield client
    finally:
        await client.close()


async def test_the_anchor_role_keeps_its_internal_routes(anchor_role: TestClient) -> None:  # type: ignore[type-arg]
    client = anchor_role
    digests = [b3(os.urandom(32)) for _ in range(9)]
    r = await client.post("/internal/v1/entries", json={"tenant": "acme", "digests": digests})
    assert r.status == 200, await r.text()
    receipts = [Receipt.from_obj(x) for x in (await r.json())["receipts"]]  # finished receipts
    assert [str(x.digest) for x in receipts] == digests and {x.subject for x in receipts} == {"acme"}
    r = await client.get("/internal/v1/entries", params={"tenant": "acme", "digest": digests[4]})
    assert r.status == 200
    signed_at = clock_time(receipts[4].checkpoint, ORIGIN)  # its batch's checkpoint: the one it came with
    assert signed_at != UNKNOWN_TIME
    assert (await r.json())["entries"] == [
        {"index": receipts[4].index, "salt": receipts[4].salt.hex(), "signed_at": signed_at}
    ]
    # The anchor is a trust boundary: it checks what ingest sends again, and says what is wrong.
    bad_bodies = [
        ({"tenant": "acme", "digests": [*digests[:8], "blake3:" + "AB" * 32]}, "invalid-digest"),
        ({"tenant": "acme", "digests": ["sha256:00"]}, "invalid-digest"),
        ({"tenant": "not a name", "digests": digests}, "invalid-tenant"),
        ({"tenant": "acme", "items": [{"digest": digests[0], "salt": True}]}, "invalid-request"),
        ({"digests": digests}, "invalid-request"),
        ({"tenant": "acme", "digests": [digests[0]] * 10_001}, "too-many-digests"),
    ]
    for body, kind in bad_bodies:
        r = await client.post("/internal/v1/entries", json=body)
        assert r.status in (400, 413) and r.content_type == "application/problem+json", body
        assert (await r.json())["type"].endswith(kind), await r.text()
    r = await client.get("/internal/v1/entries", params={"tenant": "acme", "digest": digests[0]})
    assert len((await r.json())["entries"]) == 1  # nothing of the refused bodies was notarized


async def test_the_anchor_role_erases_one_tenants_rows(anchor_role: TestClient) -> None:  # type: ignore[type-arg]
    """DELETE /internal/v1/entries: what DELETE /v1/receipts asks of the anchor (verify pods)."""
    client = anchor_role
    digest = b3(os.urandom(32))
    for tenant in ("acme", "acme", "globex"):
        r = await client.post("/internal/v1/entries", json={"tenant": tenant, "digests": [digest]})
        assert r.status == 200, await r.text()
    query = {"tenant": "acme", "digest": digest}
    r = await client.delete("/internal/v1/entries", params=query)
    assert r.status == 200 and await r.json() == {"erased": 2}
    r = await client.get("/internal/v1/entries", params=query)
    assert (await r.json())["entries"] == []
    r = await client.get("/internal/v1/entries", params={"tenant": "globex", "digest": digest})
    assert len((await r.json())["entries"]) == 1
    r = await client.delete("/internal/v1/entries", params=query)
    assert await r.json() == {"erased": 0}
    for bad, kind in (
        ({"tenant": "../x", "digest": digest}, "invalid-tenant"),
        ({"tenant": "acme", "digest": "blake3:00"}, "invalid-digest"),
        ({"tenant": "acme"}, "invalid-digest"),
    ):
        r = await client.delete("/internal/v1/entries", params=bad)
        assert r.status == 400 and (await r.json())["type"].endswith(kind), bad


@pytest.mark.parametrize("notar", ["fs"], indirect=True)
async def test_notar_serve_erases_only_with_a_key(notar: Notar) -> None:
    digest = b3(os.urandom(32))
    r = await notar.client.post("/v1/digests", json={"digests": [digest]}, headers=notar.acme)
    assert r.status == 200
    r = await notar.client.delete("/internal/v1/entries", params={"tenant": "acme", "digest": digest})
    assert r.status in (404, 405) and r.content_type == "application/problem+json"
    assert (await notar.client.get(f"/v1/receipts/{digest}", headers=notar.acme)).status == 200


async def test_a_lookup_over_the_wire_carries_each_batchs_signed_time(anchor_role: TestClient) -> None:  # type: ignore[type-arg]
    """The verify pods' side of `GET /internal/v1/entries` (AnchorClient) against the anchor's route:
    every notarization with the time its batch was signed at, as the anchor's own sequencer has it."""
    digest = b3(os.urandom(32))
    made = []
    for _ in range(2):  # two batches
        r = await anchor_role.post("/internal/v1/entries", json={"tenant": "acme", "digests": [digest]})
        made.append(Receipt.from_obj((await r.json())["receipts"][0]))
    anchor = AnchorClient(str(anchor_role.make_url("/")))
    try:
        found = await anchor.lookup("acme", parse_digest(digest))
    finally:
        await anchor.close()
    assert found == [Found(r.index, r.salt, clock_time(r.checkpoint, ORIGIN)) for r in made]
    assert all(f.signed_at != UNKNOWN_TIME for f in found)
    # an anchor of before these times answers without them: unknown, not an error
    salt = "00" * 16
    assert decode_found({"entries": [{"index": 3, "salt": salt}]}) == [Found(3, bytes(16), None)]
    for bad in ("soon", -1, True, 1.5):
        with pytest.raises(ValueError, match="malformed"):
            decode_found({"entries": [{"index": 3, "salt": salt, "signed_at": bad}]})
