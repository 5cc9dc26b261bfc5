"""Crafted receipts against POST /v1/verify of a real `notar serve` (local and RFC 3161 anchors,
a real openssl TSA): never a 5xx, never "valid" for a tampered receipt, the library's verdict check
for check, and problem+json for bodies that are not a verification request."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from loadtest.fuzz_mutations import mutated_receipts
from loadtest.fuzz_oracle import Oracle
from loadtest.fuzz_seeds import Seeds, body_of
from merkle import verify_receipt
from merkle.anchors import offline_anchor_verifiers
from merkle.anchors.rfc3161 import load_certificates
from services.published.trust import document_trust
from services.sdk import trusted_keys
from tests.fuzz.conftest import sample
from tests.serving import free_port, wait_ready
from tests.tsa import LocalTsa, make_pki

NOTAR = str(Path(sys.executable).with_name("notar"))
ORIGIN = "fuzz-api.notar.test/log"
CRAFTED = 300
PROBLEM = "application/problem+json"


@dataclass
class Server:
    url: str
    seeds: Seeds
    ca: Path


async def _post_digests(
    session: aiohttp.ClientSession, url: str, api_key: str, digests: list[str]
) -> list[dict[str, Any]]:
    headers = {"Authorization": f"Bearer {api_key}"}
    async with session.post(url + "/v1/digests", json={"digests": digests}, headers=headers) as r:
        assert r.status == 200, await r.text()
        receipts: list[dict[str, Any]] = (await r.json())["receipts"]
    return receipts


async def _anchored(session: aiohttp.ClientSession, url: str, api_key: str, digest: str) -> dict[str, Any]:
    """The receipt of `digest` once upgraded to a checkpoint with a local and an RFC 3161 anchor."""
    deadline = time.monotonic() + 90
    while True:
        async with session.get(
            f"{url}/v1/receipts/{digest}", headers={"Authorization": f"Bearer {api_key}"}
        ) as r:
            receipt: dict[str, Any] = await r.json()
        if {a["type"] for a in receipt.get("anchors", [])} >= {"local", "rfc3161"}:
            return receipt
        assert time.monotonic() < deadline, f"no anchored receipt in 90 s: {receipt}"
        await asyncio.sleep(0.3)


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[Server]:
    pki = make_pki(tmp_path / "pki")
    tsa = LocalTsa(pki)
    await tsa.start()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "NOTAR_DATA_DIR": str(tmp_path / "data"),
        "NOTAR_ORIGIN": ORIGIN,
        "NOTAR_LISTEN": f"127.0.0.1:{port}",
        "NOTAR_URL": url,
        "NOTAR_BATCH_MS": "10",
        "NOTAR_ANCHOR_INTERVAL_S": "1",
        "NOTAR_ANCHORS": "local,rfc3161",
        "NOTAR_TSA_URL": tsa.url,
        "NOTAR_TSA_CA_FILE": str(pki.ca_cert),
    }
    log = (tmp_path / "serve.log").open("wb")
    proc = await asyncio.to_thread(
        subprocess.Popen, [NOTAR, "serve"], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        await asyncio.to_thread(wait_ready, url, proc, timeout=60)
        add = await asyncio.to_thread(
            subprocess.run,
            [NOTAR, "tenant", "add", "fuzz"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        api_key = add.stdout.strip().splitlines()[-1]
        digests = [f"blake3:{i:064x}" for i in range(1, 5)]
        async with aiohttp.ClientSession() as session:
            first = await _post_digests(session, url, api_key, digests)
            first += await _post_digests(session, url, api_key, [f"sha256:{9:064x}"])
            upgraded = [await _anchored(session, url, api_key, d) for d in (digests[0], digests[3])]
            async with session.get(url + "/v1/keys") as resp:
                keys = await resp.json()
        receipts = first + upgraded
        anchors: dict[str, list[dict[str, Any]]] = {}
        for r in receipts:
            anchors.setdefault(body_of(r["checkpoint"]), []).extend(r["anchors"])
        seeds = Seeds(
            keys=trusted_keys(keys),
            receipts=receipts,
            anchors=anchors,
            notes=sorted({r["checkpoint"] for r in receipts}),
            ca_pem=pki.ca_cert.read_text(),
            tsa_responses=[],
            chain={},
            cose=[],
            tlog_proofs=[],
        )
        yield Server(url, seeds, pki.ca_cert)
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.to_thread(proc.wait, 60)
        log.close()
        await tsa.stop()
    output = (tmp_path / "serve.log").read_text(errors="replace")
    assert "Traceback" not in output and "unexpected error" not in output, output[-3000:]


NOT_REQUESTS: list[bytes] = [
    b"",
    b"not json",
    b"[]",
    b"null",
    b"42",
    b'"receipt"',
    b"{}",
    b'{"digest": "blake3:00"}',
    b'{"receipt": {}, "digest": 5}',
    b'{"receipt": {}, "digest": ["blake3:00"]}',
    b'{"receipt": {}',
    b'{"receipt": NaN}',
    b'{"receipt": "\\ud800"}',
    b'{"receipt": 1e400}',
    b"\xff\xfe{}",
    b"\xef\xbb\xbf{}",
    b"[" * 5000 + b"]" * 5000,
    b'{"receipt": ' + b"[" * 5000 + b"]" * 5000 + b"}",
]


async def test_crafted_receipts_against_post_verify(server: Server) -> None:
    seeds = server.seeds
    oracle = Oracle(seeds, checked_kinds={"local", "rfc3161"})
    verifiers = offline_anchor_verifiers(keys=seeds.keys, tsa_cas=load_certificates(seeds.ca_pem.encode()))
    crafted = sample(mutated_receipts(seeds), CRAFTED)
    assert len(crafted) == CRAFTED
    digests = [None, *(r["digest"] for r in seeds.receipts)]
    valid = invalid = refused = 0
    async with aiohttp.ClientSession() as session:
        async with session.get(server.url + "/v1/keys") as resp:
            published = document_trust(await resp.json())  # the server's policy adds the witnesses check
        for i, r in enumerate([*seeds.receipts, *crafted]):
            # a seed goes with no digest or its own; a crafted receipt with any seed's, or none
            digest = (None, r["digest"])[i % 2] if i < len(seeds.receipts) else digests[i % len(digests)]
            request = {"receipt": r} if digest is None else {"receipt": r, "digest": digest}
            body = json.dumps(request).encode()  # Python's json: NaN, lone surrogates, big ints pass
            async with session.post(
                server.url + "/v1/verify", data=body, headers={"Content-Type": "application/json"}
            ) as resp:
                status, ctype, answer = resp.status, resp.content_type, await resp.read()
            assert status < 500, (status, answer[:500])
            try:
                parsed = orjson.loads(body)
            except orjson.JSONDecodeError:  # the server reads JSON as strictly as orjson does
                assert (status, ctype) == (400, PROBLEM), (status, answer[:300])
                assert orjson.loads(answer)["type"].endswith("malformed-json")
                refused += 1
                continue
            assert status == 200, (status, answer[:500])
            verdict = orjson.loads(answer)
            local = verify_receipt(
                parsed["receipt"], keys=published, digest=parsed.get("digest"), anchor_verifiers=verifiers
            )
            assert verdict == local.to_obj()
            problem = oracle.judge(parsed["receipt"], local)
            assert problem is None, (problem, r)
            if i < len(seeds.receipts):
                assert local.valid, local.failed  # every seed as the server issued it verifies
            valid, invalid = valid + local.valid, invalid + (not local.valid)
        for raw in NOT_REQUESTS:
            async with session.post(
                server.url + "/v1/verify", data=raw, headers={"Content-Type": "application/json"}
            ) as resp:
                status, ctype, answer = resp.status, resp.content_type, await resp.read()
            assert 400 <= status < 500 and ctype == PROBLEM, (raw[:60], status, answer[:300])
            doc = orjson.loads(answer)
            assert doc["status"] == status and doc["type"].startswith("urn:notar:problem:") and doc["detail"]
    # Most crafted receipts are tampered; a few changes keep the evidence (a dropped anchor...).
    print(f"POST /v1/verify: {valid} valid, {invalid} not valid, {refused} refused as malformed JSON")
    assert invalid >= CRAFTED // 2 and valid >= len(seeds.receipts), (valid, invalid, refused)
