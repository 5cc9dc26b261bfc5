"""SPEC §6 end to end on one `notar serve` app, on the fs store and on SeaweedFS: receipts v2
written by the anchor, /v1/keys, publication waits and Cache-Control, the private prefix."""

from __future__ import annotations

import asyncio
import copy
import hashlib
import os
from typing import Any

import blake3
import orjson
import pytest

from merkle import (
    Receipt,
    leaf_hash,
    make_entry,
    parse_digest,
    verify_consistency,
    verify_inclusion,
    verify_receipt,
)
from merkle.checkpoint import parse_checkpoint
from merkle.note import parse_note
from services.published import layout
from services.published.trust import trusted_keys
from tests.services.conftest import Notar


def b3(data: bytes) -> str:
    return "blake3:" + blake3.blake3(data).hexdigest()


async def notarize(n: Notar, digests: list[str], headers: dict[str, str] | None = None, **body: Any) -> Any:
    r = await n.client.post("/v1/digests", json={"digests": digests, **body}, headers=headers or n.acme)
    assert r.status == 200, await r.text()
    return (await r.json())["receipts"]


async def problem(r: Any, status: int, kind: str) -> dict[str, Any]:
    assert r.status == status, await r.text()
    assert r.content_type == "application/problem+json"
    body: dict[str, Any] = await r.json()
    assert body["type"] == f"urn:notar:problem:{kind}" and body["status"] == status and body["detail"]
    return body


async def test_digests_give_valid_receipts_in_order(notar: Notar) -> None:
    docs = [os.urandom(100) for _ in range(5)]
    digests = [b3(d) for d in docs] + ["sha256:" + hashlib.sha256(b"x").hexdigest()]
    r = await notar.client.post("/v1/digests", json={"digests": digests}, headers=notar.acme)
    raw = await r.read()
    receipts = orjson.loads(raw)["receipts"]
    assert [r["digest"] for r in receipts] == digests
    assert len({r["log"]["index"] for r in receipts}) == 6
    for d, r in zip(docs, receipts, strict=False):
        result = verify_receipt(r, keys=notar.keys, document=d)
        assert result.valid, result.failed
    typed = [Receipt.from_obj(r) for r in receipts]
    assert raw == b'{"receipts":[' + b",".join(t.to_json() for t in typed) + b"]}"  # canonical, as is
    for digest, t in zip(digests, typed, strict=True):
        assert t.subject == "acme" and len(t.salt) == 16
        assert t.entry == make_entry(parse_digest(digest), t.salt, "acme") and t.entry[0] == 2


async def test_auth_is_required_and_checked(notar: Notar) -> None:
    c = notar.client
    body = {"digests": [b3(b"a")]}
    await problem(await c.post("/v1/digests", json=body), 401, "unauthorized")
    await problem(
        await c.post("/v1/digests", json=body, headers={"Authorization": "Bearer notar_forged"}),
        401,
        "unauthorized",
    )
    await problem(
        await c.post("/v1/digests", json=body, headers={"Authorization": "Basic abc"}), 401, "unauthorized"
    )
    r = await c.post("/v1/digests", json=body)
    assert r.headers["WWW-Authenticate"].startswith("Bearer")


async def test_bad_requests(notar: Notar) -> None:
    c, h = notar.client, notar.acme
    body = await problem(
        await c.post("/v1/digests", json={"digests": [b3(b"a"), "blake3:XYZ"]}, headers=h),
        400,
        "invalid-digest",
    )
    assert body["position"] == 1
    await problem(
        await c.post("/v1/digests", json={"digests": [b3(b"a")] * 10_001}, headers=h), 413, "too-many-digests"
    )
    await problem(await c.post("/v1/digests", data=b"{not json", headers=h), 400, "malformed-json")
    await problem(await c.post("/v1/digests", json={"digest": "x"}, headers=h), 400, "invalid-request")
    for salt in (True, False, "yes"):  # the unsalted mode is gone: naming it at all is refused
        body = await problem(
            await c.post("/v1/digests", json={"digests": [b3(b"a")], "salt": salt}, headers=h),
            400,
            "invalid-request",
        )
        assert "unsalted mode was removed in format v2" in body["detail"], body
    await problem(await c.get("/v1/nothing-here"), 404, "not-found")


async def test_ten_thousand_digests_in_one_call(notar: Notar) -> None:
    digests = [f"sha256:{i:064x}" for i in range(10_000)]
    receipts = await notarize(notar, digests)
    assert len(receipts) == 10_000 and receipts[9_999]["digest"] == digests[-1]
    r = receipts[4321]
    assert verify_receipt(r, keys=notar.keys, digest=digests[4321]).valid


async def test_documents_round_trip_and_stay_private(notar: Notar) -> None:
    c = notar.client
    data = os.urandom(9 * 1024 * 1024 + 123)  # three chunks
    r = await c.put("/v1/documents", data=data, headers=notar.acme)
    assert r.status == 201, await r.text()
    answer = await r.json()
    doc = answer["document"]
    assert doc == {
        "digest": b3(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "size": len(data),
        "chunks": 3,
    }
    assert verify_receipt(answer["receipt"], keys=notar.keys, document=data).valid
    assert answer["receipt"]["subject"] == "acme" and answer["receipt"]["digest"] == b3(data)
    got = await c.get(f"/v1/documents/{doc['digest']}", headers=notar.acme)
    assert got.status == 200 and await got.read() == data
    by_sha = await c.get(f"/v1/documents/sha256:{doc['sha256']}", headers=notar.acme)
    assert await by_sha.read() == data
    await problem(await c.get(f"/v1/documents/{doc['digest']}", headers=notar.globex), 404, "not-found")
    await problem(await c.get(f"/v1/documents/{doc['digest']}"), 401, "unauthorized")
    await problem(await c.get("/v1/documents/blake3:zz", headers=notar.acme), 400, "invalid-digest")


async def test_corrupted_chunks_are_never_served(notar: Notar) -> None:
    c, store = notar.client, notar.store
    data = os.urandom(5 * 1024 * 1024)
    doc = (await (await c.put("/v1/documents", data=data, headers=notar.acme)).json())["document"]
    first, second = sorted([k async for k in store.list("documents/chunks/")])  # one upload, 2 chunks
    # corrupt the second chunk: headers go out, then the connection is cut short
    sealed = await store.get(second)
    await store.delete(second)
    await store.put_if_absent(second, sealed[:-1] + bytes([sealed[-1] ^ 1]))
    r = await c.get(f"/v1/documents/{doc['digest']}", headers=notar.acme)
    with pytest.raises(Exception):  # noqa: B017 - aiohttp reports the short body as a payload error
        await r.read()
    # corrupt the first chunk: a problem+json answer
    await store.delete(first)
    await store.put_if_absent(first, b"evil")
    await problem(await c.get(f"/v1/documents/{doc['digest']}", headers=notar.acme), 500, "corrupted")


async def test_interrupted_upload_leaves_nothing_visible(notar: Notar) -> None:
    c = notar.client
    size_before = parse_checkpoint(parse_note(await (await c.get("/log/checkpoint")).text()).text).size

    async def body() -> Any:
        yield os.urandom(5 * 1024 * 1024)
        raise ConnectionResetError("client went away")

    with pytest.raises(Exception):  # noqa: B017
        await c.put("/v1/documents", data=body(), headers=notar.acme)
    keys = [k async for k in notar.store.list("documents/")]
    assert keys == [], "no manifest, and the chunks it wrote are deleted"
    size_after = parse_checkpoint(parse_note(await (await c.get("/log/checkpoint")).text()).text).size
    assert size_after == size_before


async def test_receipts_first_and_all_and_tenant_isolation(notar: Notar) -> None:
    c = notar.client
    d = b3(b"contract")
    first = (await notarize(notar, [d]))[0]
    await notarize(notar, [d])
    await notarize(notar, [d], headers=notar.globex)
    r = await c.get(f"/v1/receipts/{d}", headers=notar.acme)
    assert r.status == 200
    raw = await r.read()
    got = orjson.loads(raw)
    assert got["log"]["index"] == first["log"]["index"] and got["entry"] == first["entry"]
    assert got["salt"] == first["salt"] and got["subject"] == "acme"
    assert verify_receipt(got, keys=notar.keys, document=b"contract").valid
    assert Receipt.from_json(raw).to_json() == raw  # canonical
    every = (await (await c.get(f"/v1/receipts/{d}?all=true", headers=notar.acme)).json())["receipts"]
    assert len(every) == 2 and every[0]["log"]["index"] == first["log"]["index"]
    theirs = await (await c.get(f"/v1/receipts/{d}", headers=notar.globex)).json()
    assert theirs["entry"] not in {x["entry"] for x in every}  # salts are per notarization
    assert theirs["subject"] == "globex"
    assert verify_receipt(theirs, keys=notar.keys, document=b"contract").valid
    await problem(await c.get(f"/v1/receipts/{b3(b'never')}", headers=notar.acme), 404, "not-found")
    await problem(await c.get(f"/v1/receipts/{d}"), 401, "unauthorized")


async def test_receipts_all_is_paginated(notar: Notar) -> None:
    """`?all=true` pages through every notarization, earliest first; a plain look-up reads one."""
    c = notar.client
    d = b3(b"repeated")
    for _ in range(5):
        await notarize(notar, [d])
    seen: list[int] = []
    pages = 0
    url = f"/v1/receipts/{d}?all=true&limit=2"
    while True:
        page = await (await c.get(url, headers=notar.acme)).json()
        pages += 1
        assert 1 <= len(page["receipts"]) <= 2
        seen += [r["log"]["index"] for r in page["receipts"]]
        if page["next"] is None:
            break
        url = f"/v1/receipts/{d}?all=true&limit=2&cursor={page['next']}"
    assert pages == 3 and len(seen) == 5 and seen == sorted(set(seen))
    first = await (await c.get(f"/v1/receipts/{d}", headers=notar.acme)).json()
    assert first["log"]["index"] == seen[0]
    last = await (await c.get(f"/v1/receipts/{d}?all=true&cursor={seen[-1]}", headers=notar.acme)).json()
    assert last == {"receipts": [], "next": None}
    huge = await c.get(f"/v1/receipts/{d}?all=true&cursor=9999999999999999999", headers=notar.acme)
    assert (await huge.json()) == {"receipts": [], "next": None}
    for bad in ("limit=0", "limit=1001", "limit=x", "cursor=-1"):
        answer = await c.get(f"/v1/receipts/{d}?all=true&{bad}", headers=notar.acme)
        await problem(answer, 400, "invalid-parameter")


async def test_proofs_keys_and_published_log(notar: Notar) -> None:
    c = notar.client
    receipts = await notarize(notar, [f"sha256:{i:064x}" for i in range(700)])
    keys_answer = await c.get("/v1/keys")
    keys = await keys_answer.json()
    assert trusted_keys(keys) == notar.keys and keys["witnesses"] == []
    origin = notar.keys[0].split("+")[0]  # the log key is named after the origin
    assert keys["logs"] == [
        {"origin": origin, "log": notar.keys[0], "clock": notar.keys[1], "state": "active", "from_size": 0,
         "until_size": None}
    ]
    clock_name = notar.keys[1].split("+")[0]
    assert keys["policy"] == (
        f"log {notar.keys[0]}\nwitness {clock_name} {notar.keys[1]}\nquorum {clock_name}\n"
    )
    assert keys_answer.headers["Cache-Control"] == "public, max-age=300"
    r = receipts[500]
    deadline = asyncio.get_running_loop().time() + 10
    while True:  # receipts are acknowledged before the tiles are published: wait for them
        cp_resp = await c.get("/log/checkpoint")
        cp = parse_checkpoint(parse_note(await cp_resp.text()).text)
        if cp.size >= r["log"]["tree_size"] or asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.05)
    assert cp_resp.headers["Cache-Control"] == "public, max-age=2"
    index = r["log"]["index"]
    inc_resp = await c.get(f"/v1/proofs/inclusion?index={index}&size={cp.size}")
    assert inc_resp.status == 200, await inc_resp.text()
    inc = await inc_resp.json()
    leaf = leaf_hash(bytes.fromhex(r["entry"]))
    assert verify_inclusion(leaf, index, cp.size, [bytes.fromhex(h) for h in inc["proof"]], cp.root)
    # a size that is not a checkpoint size still works (cut from the wider tile)
    old_root_resp = await c.get(f"/v1/proofs/inclusion?index=3&size={index + 1}")
    assert old_root_resp.status == 200
    cons = await (
        await c.get(f"/v1/proofs/consistency?from={r['log']['tree_size'] - 100}&to={cp.size}")
    ).json()
    assert cons["from"] == r["log"]["tree_size"] - 100
    first_cp = parse_checkpoint(parse_note(receipts[0]["checkpoint"]).text)
    cons = await (await c.get(f"/v1/proofs/consistency?from={first_cp.size}&to={cp.size}")).json()
    assert verify_consistency(
        first_cp.size, cp.size, [bytes.fromhex(h) for h in cons["proof"]], first_cp.root, cp.root
    )
    tile = await c.get("/log/tile/0/000")
    assert tile.status == 200 and tile.headers["Cache-Control"].endswith("immutable")
    assert await tile.read() == await notar.store.get("log/tile/0/000")
    bundle = await c.get("/log/tile/entries/000", headers={"Accept-Encoding": "gzip"})
    assert await bundle.read() == await notar.store.get("log/tile/entries/000")
    for bad in ("index=5&size=5", "index=-1&size=5", "index=01&size=5", "size=5", "index=a&size=b"):
        await problem(await c.get(f"/v1/proofs/inclusion?{bad}"), 400, "invalid-parameter")
    started = asyncio.get_running_loop().time()
    await problem(await c.get(f"/v1/proofs/inclusion?index=0&size={cp.size + 1000}"), 404, "not-found")
    assert asyncio.get_running_loop().time() - started >= 1.9  # it waited for that tree, 2 s at most
    await problem(await c.get("/v1/proofs/consistency?from=9&to=3"), 400, "invalid-parameter")
    for path in ("/log/tile/../keys.json", "/log/tile/0/%2e%2e/x", "/log/tile/0/1", "/log/tile/entries/999"):
        r2 = await c.get(path)
        assert r2.status == 404, path
    public = [k async for k in notar.store.list("log/")]  # tlog-tiles, nothing else: no lease, keys
    assert "log/checkpoint" in public
    assert all(k == "log/checkpoint" or k.startswith("log/tile/") for k in public)
    assert await notar.store.get(layout.lease_key()) and await notar.store.get(layout.keys_key())


async def test_post_verify_names_each_check(notar: Notar) -> None:
    c = notar.client
    d = b3(b"will")
    receipt = (await notarize(notar, [d]))[0]
    ok = await (await c.post("/v1/verify", json={"receipt": receipt, "digest": d})).json()
    assert ok["valid"] is True and {ch["name"] for ch in ok["checks"]} >= {
        "format",
        "document",
        "entry",
        "checkpoint",
        "log signature",
        "inclusion",
        "signed time",
    }
    tampered = copy.deepcopy(receipt)
    tampered["log"]["index"] += 1
    bad = await (await c.post("/v1/verify", json={"receipt": tampered, "digest": d})).json()
    assert bad["valid"] is False and [ch["name"] for ch in bad["checks"] if not ch["ok"]] == ["inclusion"]
    other = await (await c.post("/v1/verify", json={"receipt": receipt, "digest": b3(b"forged")})).json()
    assert [ch["name"] for ch in other["checks"] if not ch["ok"]] == ["document"]
    garbage = await (await c.post("/v1/verify", json={"receipt": [1, 2]})).json()
    assert garbage["valid"] is False
    await problem(await c.post("/v1/verify", json={"digest": d}), 400, "invalid-request")


async def test_health_readiness_metrics(notar: Notar) -> None:
    c = notar.client
    assert (await c.get("/healthz")).status == 200
    assert (await c.get("/readyz")).status == 200
    await notarize(notar, [b3(b"m")])
    text = await (await c.get("/metrics")).text()
    assert "notar_entries_sequenced_total 1" in text and "notar_publication_lag_entries" in text
