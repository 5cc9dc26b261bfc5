"""The roles as separate processes (`notar serve --role anchor|ingest|verify`): the anchor's
internal API (no API key; only ingest and verify pods reach it) refuses hostile bodies and
queries with 400/413 problem+json, never a 500; and every role runs the same hardened server
(parser refusals in problem+json, slow heads cut off)."""

from __future__ import annotations

import asyncio
import json
import os

import pytest

from tests.hostile.conftest import READ_TIMEOUT_S, Served
from tests.hostile.rawhttp import closed_within, exchange, request

D = "sha256:" + "ab" * 32
ENTRIES = "/internal/v1/entries"

BODIES: dict[str, object] = {
    "a tenant that climbs": {"tenant": "../../etc", "digests": [D]},
    "an empty tenant": {"tenant": "", "digests": [D]},
    "a 1,000-character tenant": {"tenant": "a" * 1000, "digests": [D]},
    "a NUL in the tenant": {"tenant": "a\x00b", "digests": [D]},
    "a non-ASCII tenant": {"tenant": "é", "digests": [D]},
    "a tenant with a slash": {"tenant": "acme/x", "digests": [D]},
    "a number for the tenant": {"tenant": 5, "digests": [D]},
    "a string for digests": {"tenant": "acme", "digests": D},
    "a list for a digest": {"tenant": "acme", "digests": [[D]]},
    "format v1's items": {"tenant": "acme", "digests": [{"digest": D, "salt": True}]},
    "a number for a digest": {"tenant": "acme", "digests": [5]},
    "an upper-case digest among ten": {"tenant": "acme", "digests": [D] * 9 + [D.upper()]},
    "10,001 digests": {"tenant": "acme", "digests": [D] * 10_001},
    "a list": [{"tenant": "acme"}],
}


def status_ok(answer_status: int, name: str) -> bool:
    return answer_status == (413 if name == "10,001 digests" else 400)


@pytest.mark.parametrize("name", list(BODIES))
async def test_the_anchor_refuses_hostile_entries(split_roles: dict[str, Served], name: str) -> None:
    anchor = split_roles["anchor"]
    body = json.dumps(BODIES[name]).encode()
    answer = await exchange(
        anchor.port, request("POST", ENTRIES, headers={"Content-Type": "application/json"}, body=body)
    )
    assert status_ok(answer.status, name) and answer.is_problem(), answer


async def test_the_anchor_refuses_hostile_json_and_lookups(split_roles: dict[str, Served]) -> None:
    anchor = split_roles["anchor"]
    for body in (b"[" * 100_000 + b"]" * 100_000, b'{"tenant": "acme", "digests": [NaN]}', b"\xff", b""):
        answer = await exchange(anchor.port, request("POST", ENTRIES, body=body))
        assert answer.status == 400 and answer.is_problem(400), answer
    big = request("POST", ENTRIES, headers={"Content-Length": str(4 * 1024 * 1024 + 1)})
    answer = await exchange(anchor.port, big)
    assert answer.status == 413 and answer.is_problem(413), answer
    for query in (
        f"tenant=../x&digest={D}",
        f"tenant=%ff&digest={D}",
        "tenant=acme&digest=../x",
        "tenant=acme",
        f"tenant=a%00b&digest={D}",
        f"tenant={'a' * 5000}&digest={D}",
        f"digest={D}",
    ):
        answer = await exchange(anchor.port, request("GET", f"{ENTRIES}?{query}"))
        assert answer.status == 400 and answer.is_problem(400), (query, answer)


async def test_ingest_and_verify_still_work_through_the_anchor(split_roles: dict[str, Served]) -> None:
    ingest, verify = split_roles["ingest"], split_roles["verify"]
    digest = "sha256:" + os.urandom(32).hex()
    auth = {"Authorization": f"Bearer {ingest.acme}"}
    body = json.dumps({"digests": [digest]}).encode()
    answer = await exchange(ingest.port, request("POST", "/v1/digests", headers=auth, body=body))
    assert answer.status == 200, answer
    answer = await exchange(verify.port, request("GET", f"/v1/receipts/{digest}", headers=auth))
    assert answer.status == 200 and answer.json()["digest"] == digest, answer
    other = await exchange(
        verify.port,
        request("GET", f"/v1/receipts/{digest}", headers={"Authorization": f"Bearer {ingest.globex}"}),
    )
    assert other.status == 404 and other.is_problem(404)
    raw = b"Authorization: Bearer " + ingest.acme.encode() + b"\xff\r\n"
    for answer in (
        await exchange(ingest.port, request("POST", "/v1/digests", raw_headers=raw, body=body)),
        await exchange(verify.port, request("GET", f"/v1/receipts/{digest}", raw_headers=raw)),
    ):
        assert answer.status == 401 and answer.is_problem(401), answer
    twice = b'{"receipt": {"format": "a"}, "receipt": {}}'
    answer = await exchange(verify.port, request("POST", "/v1/verify", body=twice))
    assert answer.status == 400 and answer.is_problem(400), answer


async def hardened(served: Served) -> None:
    huge = await exchange(
        served.port, request("GET", "/healthz", raw_headers=b"X-Big: " + b"a" * 100_000 + b"\r\n")
    )
    assert huge.status == 400 and huge.is_problem(400), huge
    reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
    try:
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        got = await closed_within(reader, READ_TIMEOUT_S + 12)
        assert got is not None and got.startswith(b"HTTP/1.1 408 "), got
    finally:
        writer.close()


async def test_every_role_runs_the_hardened_server(split_roles: dict[str, Served]) -> None:
    await asyncio.gather(*(hardened(served) for served in split_roles.values()))


async def test_the_anchor_refuses_hostile_erasures(split_roles: dict[str, Served]) -> None:
    """DELETE /internal/v1/entries (erasure, no API key: verify pods call it) takes the look-up's
    query and refuses the same hostile ones; through verify, only the key's tenant is erased."""
    anchor, ingest, verify = split_roles["anchor"], split_roles["ingest"], split_roles["verify"]
    for query in (
        f"tenant=../x&digest={D}",
        f"tenant=%ff&digest={D}",
        "tenant=acme&digest=../x",
        "tenant=acme",
        f"tenant={'a' * 5000}&digest={D}",
        f"digest={D}",
    ):
        answer = await exchange(anchor.port, request("DELETE", f"{ENTRIES}?{query}"))
        assert answer.status == 400 and answer.is_problem(400), (query, answer)
    digest = "sha256:" + os.urandom(32).hex()
    body = json.dumps({"digests": [digest]}).encode()
    for key in (ingest.acme, ingest.globex):
        auth = {"Authorization": f"Bearer {key}"}
        answer = await exchange(ingest.port, request("POST", "/v1/digests", headers=auth, body=body))
        assert answer.status == 200, answer
    acme = {"Authorization": f"Bearer {ingest.acme}"}
    answer = await exchange(verify.port, request("DELETE", f"/v1/receipts/{digest}", headers=acme))
    assert answer.status == 204, answer
    answer = await exchange(verify.port, request("DELETE", f"/v1/receipts/{digest}", headers=acme))
    assert answer.status == 404 and answer.is_problem(404), answer
    globex = {"Authorization": f"Bearer {ingest.globex}"}
    answer = await exchange(verify.port, request("GET", f"/v1/receipts/{digest}", headers=globex))
    assert answer.status == 200, answer
