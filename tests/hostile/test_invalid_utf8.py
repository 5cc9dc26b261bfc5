"""Bytes that are not UTF-8 (or are UTF-8 of the wrong kind) in JSON bodies, URL paths, query
strings and header values, raw and percent-encoded: 400 or 401 problem+json, never a 500."""

from __future__ import annotations

import pytest

from tests.hostile.conftest import Served
from tests.hostile.rawhttp import exchange, request

BAD_UTF8 = {
    "a lone continuation byte": b"\x80",
    "0xff": b"\xff\xfe",
    "a truncated sequence": b"\xc3",
    "an overlong slash": b"\xc0\xaf",
    "an encoded surrogate": b"\xed\xa0\x80",
    "beyond U+10FFFF": b"\xf4\x90\x80\x80",
}


@pytest.mark.parametrize("name", list(BAD_UTF8))
@pytest.mark.parametrize("route", ["/v1/digests", "/v1/verify"])
async def test_in_a_json_body(served: Served, route: str, name: str) -> None:
    bad = BAD_UTF8[name]
    body = b'{"digests": ["sha256:' + bad + b'"], "receipt": {"digest": "' + bad + b'"}}'
    headers = {"Authorization": f"Bearer {served.acme}", "Content-Type": "application/json"}
    index = await served.marker()
    answer = await exchange(served.port, request("POST", route, headers=headers, body=body))
    assert answer.status == 400 and answer.is_problem(400), answer
    assert await served.marker() == index + 1


PATHS = ["/v1/receipts/{}", "/v1/documents/{}", "/log/tile/0/{}", "/log/tile/entries/{}", "/{}"]


@pytest.mark.parametrize("name", list(BAD_UTF8))
@pytest.mark.parametrize("path", PATHS)
async def test_in_a_url_path(served: Served, path: str, name: str) -> None:
    auth = {"Authorization": f"Bearer {served.acme}"}
    raw = path.encode().replace(b"{}", BAD_UTF8[name])
    escaped = path.format("".join(f"%{b:02x}" for b in BAD_UTF8[name]))
    for target in (raw, escaped, escaped + "?all=true"):
        answer = await exchange(served.port, request("GET", target, headers=auth))
        assert answer.status in (400, 404) and answer.is_problem(), (target, answer)


@pytest.mark.parametrize("name", list(BAD_UTF8))
async def test_in_a_query_string(served: Served, name: str) -> None:
    bad = BAD_UTF8[name]
    escaped = "".join(f"%{b:02x}" for b in bad)
    targets: list[bytes | str] = [
        b"/v1/proofs/inclusion?index=" + bad + b"&size=" + bad,
        f"/v1/proofs/inclusion?index={escaped}&size=2",
        f"/v1/proofs/consistency?from=1&to={escaped}",
    ]
    for target in targets:
        answer = await exchange(served.port, request("GET", target))
        assert answer.status in (400, 404) and answer.is_problem(), (target, answer)
    # An unknown parameter whose name is not UTF-8 is ignored like any unknown parameter.
    answer = await exchange(served.port, request("GET", f"/v1/proofs/consistency?{escaped}=1&from=0&to=0"))
    assert answer.status == 200 and answer.json() == {"from": 0, "to": 0, "proof": []}, answer


@pytest.mark.parametrize("name", list(BAD_UTF8))
async def test_in_the_authorization_header(served: Served, name: str) -> None:
    bad = BAD_UTF8[name]
    for value in (
        b"Bearer " + served.acme.encode() + bad,
        b"Bearer " + bad,
        b"Bearer notar_" + bad * 43,
        bad + b" " + served.acme.encode(),
    ):
        raw = b"Authorization: " + value + b"\r\n"
        answer = await exchange(
            served.port, request("GET", "/v1/receipts/sha256:" + "ab" * 32, raw_headers=raw)
        )
        assert answer.status in (400, 401) and answer.is_problem(), (value, answer)
        body = b'{"digests": ["sha256:' + b"cd" * 32 + b'"]}'
        answer = await exchange(served.port, request("POST", "/v1/digests", raw_headers=raw, body=body))
        assert answer.status in (400, 401) and answer.is_problem(), (value, answer)


async def test_non_ascii_keys_are_not_keys(served: Served) -> None:
    for key in ("notar_" + "é" * 43, served.acme[:-1] + "é", served.acme + "\u200b", "notar_" + "🔑" * 43):
        raw = b"Authorization: Bearer " + key.encode() + b"\r\n"
        answer = await exchange(
            served.port, request("GET", "/v1/receipts/sha256:" + "ab" * 32, raw_headers=raw)
        )
        assert answer.status == 401 and answer.is_problem(401), (key, answer)


@pytest.mark.parametrize("name", list(BAD_UTF8))
async def test_in_other_header_values(served: Served, name: str) -> None:
    raw = b"X-Note: " + BAD_UTF8[name] + b"\r\nAccept: " + BAD_UTF8[name] + b"\r\n"
    answer = await exchange(served.port, request("GET", "/v1/keys", raw_headers=raw))
    assert answer.status == 200 or (answer.status == 400 and answer.is_problem(400)), answer
