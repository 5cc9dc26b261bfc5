"""Replayed and forged API keys: random keys, keys of the right shape, a key with one bit
flipped, another tenant's key, a rotated-out and revoked key, keys in query strings, odd
Authorization schemes and several Authorization headers. Keys never reach the server's log.

How keys are checked (services/common/tenants.py): the key is hashed (SHA-256) and the hash
names the tenant's record in the store; no secret is ever compared byte by byte, so timing
tells an attacker only about the hash of his own guess."""

from __future__ import annotations

import asyncio
import base64
import os
import secrets
import subprocess
import time
from urllib.parse import quote

import pytest

from services.common.cpus import usable_cpus
from tests.hostile.conftest import KEY_CACHE_S, NOTAR, Served
from tests.hostile.rawhttp import Answer, exchange, request

WORKERS = usable_cpus()  # the served process's workers (WORKERS' default): it runs on these CPUs too


def flip_bit(key: str, bit: int) -> str:
    raw = bytearray(base64.urlsafe_b64decode(key.removeprefix("notar_") + "="))
    raw[bit // 8] ^= 1 << (bit % 8)
    return "notar_" + base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("=")


def fresh() -> str:
    return "sha256:" + os.urandom(32).hex()


async def as_key(
    served: Served, key: str | None, method: str = "GET", target: str = "", **kw: object
) -> Answer:
    headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
    body = kw.get("body")
    assert body is None or isinstance(body, bytes)
    return await exchange(
        served.port, request(method, target or f"/v1/receipts/{fresh()}", headers=headers, body=body)
    )


def unauthorized(a: Answer) -> bool:
    return (
        a.status == 401 and a.is_problem(401) and a.headers.get("www-authenticate", "").startswith("Bearer")
    )


def cli(served: Served, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [NOTAR, "tenant", *args], env=served.env, capture_output=True, text=True, timeout=60
    )


async def test_forged_keys_are_refused(served: Served) -> None:
    forged = [
        "notar_" + base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("="),  # right shape
        secrets.token_urlsafe(32),
        "notar_",
        "notar",
        served.acme[:-1],
        served.acme + "A",
        served.acme.upper(),
        "NOTAR_" + served.acme[6:],
        served.acme[6:],
        "x" * 5_000,
        *(flip_bit(served.acme, b) for b in (0, 7, 100, 255)),
    ]
    for key in forged:
        assert key != served.acme
        digests = await as_key(
            served, key, "POST", "/v1/digests", body=b'{"digests": ["' + fresh().encode() + b'"]}'
        )
        assert unauthorized(digests), (key, digests)
        assert unauthorized(await as_key(served, key)), key
        assert unauthorized(await as_key(served, key, "PUT", "/v1/documents", body=b"doc")), key
    assert (await as_key(served, served.acme, "GET", "/v1/keys")).status == 200


async def test_a_tenant_never_sees_another_tenants_documents_or_receipts(served: Served) -> None:
    doc = os.urandom(1000)
    put = await as_key(served, served.acme, "PUT", "/v1/documents", body=doc)
    assert put.status == 201, put
    digest = put.json()["document"]["digest"]
    sha = "sha256:" + put.json()["document"]["sha256"]
    mine = await as_key(served, served.acme, "GET", f"/v1/receipts/{digest}")
    assert mine.status == 200
    for target in (
        f"/v1/receipts/{digest}",
        f"/v1/receipts/{sha}",
        f"/v1/documents/{digest}",
        f"/v1/documents/{sha}",
        f"/v1/receipts/{digest}?all=true",
    ):
        theirs = await as_key(served, served.globex, "GET", target)
        never = await as_key(
            served, served.globex, "GET", target.replace(digest, fresh()).replace(sha, fresh())
        )
        assert theirs.status == 404 and theirs.is_problem(404), (target, theirs)
        assert never.status == 404 and theirs.json()["type"] == never.json()["type"], "a 404 tells nothing"
        assert str(doc) not in theirs.body.decode() and "salt" not in theirs.body.decode()
    # globex notarizing the same digest gets a receipt of its own; acme's first one is unchanged
    body = b'{"digests": ["' + digest.encode() + b'"]}'
    theirs = await as_key(served, served.globex, "POST", "/v1/digests", body=body)
    assert theirs.status == 200
    assert theirs.json()["receipts"][0]["entry"] != mine.json()["entry"], "salts are per notarization"
    again = await as_key(served, served.acme, "GET", f"/v1/receipts/{digest}")
    assert (
        again.json()["entry"] == mine.json()["entry"]
        and again.json()["log"]["index"] == mine.json()["log"]["index"]
    )


async def by_worker(
    served: Served, key: str, method: str = "GET", target: str = "", **kw: object
) -> dict[str, int]:
    """The status each worker (`X-Notar-Worker`) answered `key` with, asked on new connections until
    every one of the server's `usable_cpus()` workers answered (the kernel picks one for each
    connection; 200 tries at most)."""
    answers: dict[str, int] = {}
    for _ in range(200):
        answer = await as_key(served, key, method, target, **kw)
        answers[answer.headers.get("x-notar-worker", "1")] = answer.status
        if len(answers) == WORKERS:
            break
    assert len(answers) == WORKERS, f"{WORKERS} workers expected, {sorted(answers)} answered"
    return answers


async def test_a_rotated_out_and_revoked_key_stops_working_on_every_worker(served: Served) -> None:
    """Each worker keeps its own key cache: a revoked key stops working within KEY_CACHE_S of the
    revocation on every worker, not only on the first to notice (docs/settings.md, "Workers")."""
    added = cli(served, "key", "acme")
    assert added.returncode == 0, added.stderr
    new = added.stdout.splitlines()[-1]
    works = await by_worker(served, new)  # now in every worker's cache
    assert set(works.values()) == {404}, f"the new key works everywhere (404: nothing notarized): {works}"
    revoked = cli(served, "revoke", "acme", new)
    assert revoked.returncode == 0, revoked.stderr
    revoked_at = time.monotonic()
    while not unauthorized(await as_key(served, new)):
        assert time.monotonic() < revoked_at + KEY_CACHE_S + 10, "the revoked key works on every worker"
        await asyncio.sleep(0.2)
    await asyncio.sleep(max(0.0, revoked_at + KEY_CACHE_S + 0.5 - time.monotonic()))
    for method, target, body in (
        ("GET", "", None),
        ("POST", "/v1/digests", b'{"digests": ["' + fresh().encode() + b'"]}'),
    ):
        statuses = await by_worker(served, new, method, target, body=body)
        assert set(statuses.values()) == {401}, f"{method}: the revoked key, worker by worker: {statuses}"
    assert (await as_key(served, served.acme)).status == 404, "the tenant's other key still works"
    assert new not in served.log_text()


@pytest.mark.parametrize("param", ["api_key", "apikey", "key", "access_token", "token", "Authorization"])
async def test_a_key_in_the_query_string_is_not_a_key(served: Served, param: str) -> None:
    for value in (quote(served.acme), quote(f"Bearer {served.acme}")):
        answer = await as_key(served, None, "GET", f"/v1/receipts/{fresh()}?{param}={value}")
        assert unauthorized(answer), answer
        body = b'{"digests": ["' + fresh().encode() + b'"]}'
        answer = await as_key(served, None, "POST", f"/v1/digests?{param}={value}", body=body)
        assert unauthorized(answer), answer
    assert served.acme not in served.log_text()


async def test_odd_authorization_headers(served: Served) -> None:
    key = served.acme
    basic = base64.b64encode(f"acme:{key}".encode()).decode()
    refused = [
        f"Basic {basic}",
        f"Token {key}",
        f"Bearer{key}",
        key,
        "Bearer",
        "Bearer ",
        f"Bearer {key} extra",
        f"Bearer {key},Bearer {key}",
        f"Bearer {key}, Basic {basic}",
        f"Digest username=acme, response={key}",
        f"Bearer\t{key}",
        f"Bearer {key}\x00",
    ]
    for value in refused:
        raw = b"Authorization: " + value.encode() + b"\r\n"
        answer = await exchange(served.port, request("GET", f"/v1/receipts/{fresh()}", raw_headers=raw))
        assert unauthorized(answer) or (answer.status == 400 and answer.is_problem(400)), (value, answer)
    for value in (f"bearer {key}", f"BEARER {key}", f"Bearer   {key}  "):  # RFC 9110: scheme case-insensitive
        raw = b"Authorization: " + value.encode() + b"\r\n"
        answer = await exchange(served.port, request("GET", f"/v1/receipts/{fresh()}", raw_headers=raw))
        assert answer.status == 404, (value, answer)
    # Two Authorization headers: which one a proxy checked and which one counts is ambiguous.
    for first, second in ((key, "wrong"), ("wrong", key), (key, served.globex), (key, key)):
        raw = f"Authorization: Bearer {first}\r\nAuthorization: Bearer {second}\r\n".encode()
        answer = await exchange(served.port, request("GET", f"/v1/receipts/{fresh()}", raw_headers=raw))
        assert unauthorized(answer), (first[:8], second[:8], answer)


async def test_keys_never_reach_the_log(served: Served) -> None:
    key = served.acme
    attempts = [
        request("GET", f"/v1/receipts/{key}", headers={"Authorization": f"Bearer {key}"}),
        request("GET", f"/v1/documents/{key}?k={key}", headers={"X-Api-Key": key}),
        request("GET", f"/{key}"),
        request("GET", "/v1/keys", raw_headers=b"Authorization: Bearer " + key.encode() + b"\x01\r\n"),
        request("GET", "/v1/keys", raw_headers=b"Authorization: Bearer " + key.encode() + b"\xff\r\n"),
        request(
            "GET", "/v1/keys", raw_headers=b"Authorization: Bearer " + key.encode() + b"x" * 9000 + b"\r\n"
        ),
        request("GET", f"/v1/keys?{'a' * 9000}={key}"),
        request("POST", "/v1/digests", headers={"Authorization": f"Bearer {key}"}, body=key.encode()),
        request(
            "POST",
            "/v1/verify",
            body=b'{"receipt": "' + key.encode() + b'", "digest": "' + key.encode() + b'"}',
        ),
        request(key, "/v1/keys"),
        key.encode() + b"\r\n\r\n",
    ]
    for data in attempts:
        answer = await exchange(served.port, data)
        assert answer.status < 500, answer
    await asyncio.sleep(0.2)
    log = served.log_text()
    assert key not in log and key[6:] not in log and key[6:30] not in log
