"""Huge heads: a 100 KB header, 10,000 headers, a 100 KB request line, and bytes that are not
HTTP at all. aiohttp's parser refuses them before any route runs; the answer must still be a
clean 4xx in problem+json that quotes none of the request, nothing logged as an error, and the
server serving on."""

from __future__ import annotations

import pytest

from tests.hostile.conftest import Served
from tests.hostile.rawhttp import exchange, request

HEADS = {
    "one 100 KB header": request("GET", "/v1/keys", raw_headers=b"X-Big: " + b"a" * 100_000 + b"\r\n"),
    "a 100 KB header name": request("GET", "/v1/keys", raw_headers=b"X" * 100_000 + b": 1\r\n"),
    "10,000 headers": request(
        "GET", "/v1/keys", raw_headers=b"".join(b"X-H%d: v\r\n" % i for i in range(10_000))
    ),
    "a 100 KB path": request("GET", "/v1/receipts/" + "a" * 100_000),
    "a 100 KB query": request("GET", "/v1/proofs/inclusion?index=1&size=2&x=" + "b" * 100_000),
    "a 100 KB method": b"G" * 100_000 + b" / HTTP/1.1\r\nHost: x\r\n\r\n",
    "TLS on the HTTP port": bytes.fromhex("16030100f8010000f40303") + bytes(64) + b"\r\n\r\n",
    "not HTTP": b"\x00\x01\x02 hello\r\n\r\n",
    "a header line without a colon": request("GET", "/v1/keys", raw_headers=b"no colon here\r\n"),
    "a control character in a header": request("GET", "/v1/keys", raw_headers=b"X-A: a\x01b\r\n"),
    "two Content-Lengths that disagree": request(
        "POST", "/v1/verify", raw_headers=b"Content-Length: 2\r\nContent-Length: 3\r\n", body=None
    ),
    "Content-Length and chunked": request(
        "POST",
        "/v1/verify",
        raw_headers=b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
    ),
    "a bad chunk size": request("POST", "/v1/verify", raw_headers=b"Transfer-Encoding: chunked\r\n")
    + b"zz\r\nhello\r\n0\r\n\r\n",
    "HTTP/7.0": b"GET /v1/keys HTTP/7.0\r\nHost: x\r\n\r\n",
}


@pytest.mark.parametrize("name", list(HEADS))
async def test_a_head_the_parser_refuses_gets_a_clean_problem(served: Served, name: str) -> None:
    before = served.log_text()
    answer = await exchange(served.port, HEADS[name])
    assert answer.status in (400, 414, 431, 501, 505), answer
    assert answer.is_problem(), answer
    detail = answer.json()["detail"]
    assert "aaaa" not in detail and "bbbb" not in detail and "GGGG" not in detail, (
        "the answer quotes the request"
    )
    assert len(answer.body) < 1000
    ok = await exchange(served.port, request("GET", "/v1/keys"))
    assert ok.status == 200, "the server stopped serving"
    new = served.log_text()[len(before) :]
    assert " ERROR " not in new and "Traceback" not in new, new
    assert "aaaa" not in new and "bbbb" not in new, "the log quotes the request"
