"""Bodies over the limits: a Content-Length over the limit (refused before the body is read),
chunked bodies that grow past it, more than 10,000 digests, documents over DOCUMENT_MAX_MB, a
gzip bomb. Each gets 413 problem+json; nothing is stored or sequenced, and the server's memory
does not grow with what the client sends."""

from __future__ import annotations

import asyncio
import functools
import json
import os
import zlib

import pytest

from tests.hostile.conftest import DOCUMENT_MAX_MB, Served
from tests.hostile.rawhttp import Answer, exchange, read_answer, request

MiB = 1024 * 1024
LIMITS = {"/v1/digests": 2 * MiB, "/v1/verify": MiB, "/v1/documents": DOCUMENT_MAX_MB * MiB}


def method(route: str) -> str:
    return "PUT" if route == "/v1/documents" else "POST"


def manifests(served: Served) -> list[str]:
    d = served.data / "store" / "documents" / "acme" / "manifests"
    return sorted(p.name for p in d.iterdir()) if d.exists() else []


def auth(served: Served) -> dict[str, str]:
    return {"Authorization": f"Bearer {served.acme}", "Content-Type": "application/json"}


async def send_chunked(served: Served, route: str, chunks: int, chunk: bytes, head: dict[str, str]) -> Answer:
    """A chunked body of up to `chunks` x `chunk` bytes, written while the answer is awaited;
    the writing stops as soon as the server answers (or resets the connection)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
    lines = [f"{method(route)} {route} HTTP/1.1", "Host: 127.0.0.1", "Transfer-Encoding: chunked"]
    lines += [f"{k}: {v}" for k, v in head.items()]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())

    async def write() -> None:
        frame = b"%x\r\n" % len(chunk) + chunk + b"\r\n"
        try:
            for _ in range(chunks):
                writer.write(frame)
                await writer.drain()
            writer.write(b"0\r\n\r\n")
            await writer.drain()
        except ConnectionError:
            pass

    sender = asyncio.create_task(write())
    try:
        return await read_answer(reader, within=60)
    finally:
        sender.cancel()
        await asyncio.gather(sender, return_exceptions=True)
        writer.close()


@pytest.mark.parametrize("route", list(LIMITS))
async def test_a_declared_length_over_the_limit_is_refused_before_the_body(
    served: Served, route: str
) -> None:
    index, docs = await served.marker(), manifests(served)
    head = request(method(route), route, headers={**auth(served), "Content-Length": str(LIMITS[route] + 1)})
    answer = await exchange(served.port, head)  # the body is never sent: the answer comes anyway
    assert answer.status == 413 and answer.is_problem(413), answer
    assert str(LIMITS[route]) in answer.json()["detail"]
    assert manifests(served) == docs and await served.marker() == index + 1


@pytest.mark.parametrize("route", list(LIMITS))
async def test_a_chunked_body_growing_past_the_limit_is_refused(served: Served, route: str) -> None:
    index, docs = await served.marker(), manifests(served)
    start = b'{"digests": ["sha256:' + os.urandom(32).hex().encode() + b'", '
    answer = await send_chunked(served, route, 100, start + b" " * (64 * 1024 - len(start)), auth(served))
    assert answer.status == 413 and answer.is_problem(413), answer
    assert manifests(served) == docs, "a document over the limit was stored"
    assert await served.marker() == index + 1, "something was sequenced"


async def test_more_than_ten_thousand_digests_are_refused_whole(served: Served) -> None:
    index = await served.marker()
    digests = ["sha256:" + os.urandom(32).hex() for _ in range(10_001)]
    body = json.dumps({"digests": digests}).encode()
    assert len(body) < LIMITS["/v1/digests"], "refused for its count, not its size"
    answer = await exchange(served.port, request("POST", "/v1/digests", headers=auth(served), body=body))
    assert answer.status == 413 and answer.is_problem(413), answer
    assert answer.json()["type"].endswith("too-many-digests")
    assert await served.marker() == index + 1, "part of the request was sequenced"
    check = await exchange(
        served.port,
        request("GET", f"/v1/receipts/{digests[0]}", headers={"Authorization": f"Bearer {served.acme}"}),
    )
    assert check.status == 404 and check.is_problem(404)


async def test_a_document_at_the_limit_is_accepted(served: Served) -> None:
    body = os.urandom(DOCUMENT_MAX_MB * MiB)
    answer = await exchange(
        served.port, request("PUT", "/v1/documents", headers=auth(served), body=body), within=60
    )
    assert answer.status == 201, answer
    assert answer.json()["document"]["size"] == len(body)


@pytest.mark.parametrize("route", list(LIMITS))
async def test_fifty_megabytes_streamed_at_a_route_leave_memory_bounded(served: Served, route: str) -> None:
    """The server reads at most its limit (and what aiohttp drains after answering, which it
    drops): a 50 MB body (a string field that never ends) does not raise its peak memory by 50 MB."""
    before = served.peak_rss_kb()
    chunk = b'{"receipt": "' + b"A" * (MiB - 13)
    answer = await send_chunked(served, route, 50, chunk, auth(served))
    assert answer.status == 413 and answer.is_problem(413), answer
    grown_mb = (served.peak_rss_kb() - before) / 1024
    assert grown_mb < 25, f"the server's peak memory grew by {grown_mb:.0f} MB for a refused body"


async def test_a_million_key_object_is_refused_by_its_size(served: Served) -> None:
    before = served.peak_rss_kb()
    keys = b",".join(b'"k%d":0' % i for i in range(1_000_000))
    body = b'{"digests": ["' + os.urandom(32).hex().encode() + b'"], ' + keys + b"}"
    assert len(body) > 10 * MiB
    answer = await send_chunked(served, "/v1/digests", 1, body, auth(served))
    assert answer.status == 413 and answer.is_problem(413), answer
    assert (served.peak_rss_kb() - before) / 1024 < 25


@functools.cache
def gzip_bomb() -> bytes:
    """~64 KB of gzip that inflates to 64 MB of JSON whitespace."""
    z = zlib.compressobj(9, zlib.DEFLATED, 31)
    return z.compress(b"[" + b" " * (64 * MiB)) + z.flush()


@pytest.mark.parametrize("route", ["/v1/digests", "/v1/verify"])
async def test_a_gzip_bomb_is_refused_by_its_inflated_size(served: Served, route: str) -> None:
    """aiohttp inflates Content-Encoding: gzip bodies; the limit counts what they inflate to."""
    before = served.peak_rss_kb()
    headers = {**auth(served), "Content-Encoding": "gzip"}
    answer = await exchange(served.port, request("POST", route, headers=headers, body=gzip_bomb()), within=60)
    assert answer.status == 413 and answer.is_problem(413), answer
    grown_mb = (served.peak_rss_kb() - before) / 1024
    assert grown_mb < 25, f"the server's peak memory grew by {grown_mb:.0f} MB for a 64 MB bomb"
