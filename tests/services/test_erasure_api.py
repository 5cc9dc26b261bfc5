"""Erasure through the API (SPEC §1, §6): DELETE /v1/receipts/{digest} makes the service forget a
tenant's notarizations of a digest, DELETE /v1/documents/{digest} deletes a stored document;
other tenants keep theirs, and the receipts a client kept still verify offline."""

from __future__ import annotations

import hashlib
import os
from typing import Any

import blake3

from merkle import verify_receipt
from tests.services.conftest import Notar


def b3(data: bytes) -> str:
    return "blake3:" + blake3.blake3(data).hexdigest()


async def notarize(n: Notar, digests: list[str], headers: dict[str, str]) -> list[dict[str, Any]]:
    r = await n.client.post("/v1/digests", json={"digests": digests}, headers=headers)
    assert r.status == 200, await r.text()
    receipts: list[dict[str, Any]] = (await r.json())["receipts"]
    return receipts


async def problem(r: Any, status: int, kind: str) -> None:
    assert r.status == status, await r.text()
    assert r.content_type == "application/problem+json"
    body = await r.json()
    assert body["type"] == f"urn:notar:problem:{kind}" and body["status"] == status and body["detail"]


async def test_a_tenant_makes_the_service_forget_a_notarization(notar: Notar) -> None:
    c = notar.client
    doc, other = os.urandom(64), os.urandom(64)
    d = b3(doc)
    kept = (await notarize(notar, [d, b3(other)], notar.acme))[0]
    await notarize(notar, [d], notar.acme)
    theirs = (await notarize(notar, [d], notar.globex))[0]

    r = await c.delete(f"/v1/receipts/{d}", headers=notar.acme)
    assert r.status == 204 and await r.read() == b""
    await problem(await c.get(f"/v1/receipts/{d}", headers=notar.acme), 404, "not-found")
    await problem(await c.delete(f"/v1/receipts/{d}", headers=notar.acme), 404, "not-found")
    # the receipt the client kept verifies offline, with the document
    assert verify_receipt(kept, keys=notar.keys, document=doc).valid
    # another tenant's notarization of the same digest, and the tenant's other digests, stay
    got = await c.get(f"/v1/receipts/{d}", headers=notar.globex)
    assert got.status == 200 and (await got.json())["entry"] == theirs["entry"]
    assert (await c.get(f"/v1/receipts/{b3(other)}", headers=notar.acme)).status == 200

    await problem(await c.delete(f"/v1/receipts/{d}"), 401, "unauthorized")
    await problem(await c.delete("/v1/receipts/blake3:zz", headers=notar.acme), 400, "invalid-digest")
    sha = "sha256:" + hashlib.sha256(doc).hexdigest()
    await problem(await c.delete(f"/v1/receipts/{sha}", headers=notar.acme), 404, "not-found")


async def test_a_tenant_deletes_a_stored_document(notar: Notar) -> None:
    c = notar.client
    data = os.urandom(5 * 1024 * 1024)  # two chunks
    r = await c.put("/v1/documents", data=data, headers=notar.acme)
    assert r.status == 201, await r.text()
    answer = await r.json()
    doc = answer["document"]
    theirs = await c.put("/v1/documents", data=data, headers=notar.globex)
    assert theirs.status == 201

    r = await c.delete(f"/v1/documents/sha256:{doc['sha256']}", headers=notar.acme)
    assert r.status == 204
    for name in (doc["digest"], f"sha256:{doc['sha256']}"):
        await problem(await c.get(f"/v1/documents/{name}", headers=notar.acme), 404, "not-found")
        await problem(await c.delete(f"/v1/documents/{name}", headers=notar.acme), 404, "not-found")
    assert len([k async for k in notar.store.list("documents/")]) == 2 + 2  # globex's chunks, manifests
    got = await c.get(f"/v1/documents/{doc['digest']}", headers=notar.globex)
    assert got.status == 200 and await got.read() == data
    # the document's receipt is untouched: it still verifies with the document
    assert verify_receipt(answer["receipt"], keys=notar.keys, document=data).valid
    assert (await c.get(f"/v1/receipts/{doc['digest']}", headers=notar.acme)).status == 200
    await problem(await c.delete(f"/v1/documents/{doc['digest']}"), 401, "unauthorized")
    await problem(await c.delete("/v1/documents/sha256:00", headers=notar.acme), 400, "invalid-digest")
