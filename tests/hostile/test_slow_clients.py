"""Slow clients (slowloris): heads sent a byte at a time, heads never finished, connections that
say nothing, bodies that stall. Many at once must not keep anyone else from being served, and the
server cuts each of them off soon after READ_TIMEOUT_S; an idle keep-alive connection is not a slow
client and stays usable."""

from __future__ import annotations

import asyncio
import os
import time

from tests.hostile.conftest import READ_TIMEOUT_S, Served
from tests.hostile.rawhttp import closed_within, exchange, read_answer, request

CUT_WITHIN_S = READ_TIMEOUT_S + 12  # generous: a loaded 2-core box, and the timer's granularity


def digest() -> str:
    return "sha256:" + os.urandom(32).hex()


async def trickle(writer: asyncio.StreamWriter, data: bytes, stop: asyncio.Event) -> None:
    """Write `data` one byte every 50 ms until the server closes or `stop` is set (bounded)."""
    for b in data:
        if stop.is_set() or writer.is_closing():
            return
        try:
            writer.write(bytes([b]))
            await writer.drain()
        except ConnectionError:
            return
        await asyncio.sleep(0.05)


async def legit(served: Served) -> None:
    """A few ordinary requests, each answered in full."""
    body = f'{{"digests": ["{digest()}"]}}'.encode()
    auth = {"Authorization": f"Bearer {served.acme}", "Content-Type": "application/json"}
    a = await exchange(served.port, request("POST", "/v1/digests", headers=auth, body=body), within=15)
    assert a.status == 200, a
    assert len(a.json()["receipts"]) == 1
    a = await exchange(served.port, request("GET", "/v1/keys"), within=15)
    assert a.status == 200 and "logs" in a.json()


async def test_two_hundred_slow_clients_neither_block_others_nor_stay(served: Served) -> None:
    head = b"GET /v1/keys HTTP/1.1\r\nHost: 127.0.0.1\r\n" + b"X-Slow: " + b"a" * 4000
    auth = f"Authorization: Bearer {served.acme}\r\n".encode()
    stalled_body = (
        b"POST /v1/digests HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        + auth
        + b"Content-Type: application/json\r\nContent-Length: 5000\r\n\r\n"
        + b'{"digests": ["sha'
    )
    kinds = ["trickle"] * 80 + ["half-head"] * 60 + ["silent"] * 20 + ["stalled-body"] * 40
    stop = asyncio.Event()
    conns: list[tuple[str, asyncio.StreamReader, asyncio.StreamWriter]] = []
    tasks: list[asyncio.Task[None]] = []
    # Not a slow client: a keep-alive connection left idle between two requests, as load
    # balancers keep them for a minute or more (the deadline runs from a request's first byte).
    idle_reader, idle = await asyncio.open_connection("127.0.0.1", served.port)
    ask = b"GET /v1/keys HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    idle.write(ask)
    assert (await read_answer(idle_reader, within=15)).status == 200
    idle_since = time.monotonic()
    try:
        for kind in kinds:
            reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
            conns.append((kind, reader, writer))
            if kind == "trickle":
                tasks.append(asyncio.create_task(trickle(writer, head, stop)))
            elif kind == "half-head":
                writer.write(head[:300])
            elif kind == "stalled-body":
                writer.write(stalled_body)
        opened = time.monotonic()
        await legit(served)  # served while 200 slow connections hang
        assert time.monotonic() - opened < READ_TIMEOUT_S, "too slow to tell: the box is overloaded"

        outcomes = await asyncio.gather(*(closed_within(r, CUT_WITHIN_S) for _, r, _ in conns))
        still_open = [k for (k, _, _), got in zip(conns, outcomes, strict=True) if got is None]
        assert not still_open, f"{len(still_open)} slow connections were never cut off: {set(still_open)}"
        for (kind, _, _), got in zip(conns, outcomes, strict=True):
            assert got is not None
            if kind in ("half-head", "stalled-body"):
                assert got.startswith(b"HTTP/1.1 408 "), (kind, got[:200])
                assert b"application/problem+json" in got and b"urn:notar:problem:" in got, got
            elif kind == "silent":
                assert got == b"", "a connection that never sent a byte is closed without an answer"
            elif got:  # a trickler may lose the answer to its own reset; if it arrived, it is a 408
                assert got.startswith(b"HTTP/1.1 408 "), got[:200]
        await legit(served)  # and served afterwards
        await asyncio.sleep(max(0.0, idle_since + READ_TIMEOUT_S * 1.5 - time.monotonic()))
        idle.write(ask)
        assert (await read_answer(idle_reader, within=15)).status == 200, "an idle connection was cut"
    finally:
        idle.close()
        stop.set()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for _, _, w in conns:
            w.close()


async def stalled_body(served: Served, route: str) -> None:
    method = "PUT" if route == "/v1/documents" else "POST"
    head = (
        f"{method} {route} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {served.acme}\r\n"
        "Content-Length: 100000\r\n\r\n"
    ).encode()
    reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
    try:
        writer.write(head + b'{"digests": ["' + b"x" * 1000)
        start = time.monotonic()
        answer = await read_answer(reader, within=CUT_WITHIN_S)
        assert time.monotonic() - start >= READ_TIMEOUT_S * 0.9, "cut before the body stalled long enough"
        assert answer.status == 408 and answer.is_problem(408), (route, answer)
        assert await closed_within(reader, CUT_WITHIN_S) is not None, route
    finally:
        writer.close()


async def test_a_stalled_body_gets_408_and_stores_nothing(served: Served) -> None:
    manifests = served.data / "store" / "documents" / "acme" / "manifests"
    before = sorted(manifests.iterdir()) if manifests.exists() else []
    index = await served.marker()
    await asyncio.gather(*(stalled_body(served, r) for r in ("/v1/digests", "/v1/documents", "/v1/verify")))
    assert (sorted(manifests.iterdir()) if manifests.exists() else []) == before, "a document appeared"
    assert await served.marker() == index + 1, "something was sequenced"


async def test_a_client_that_leaves_midway_is_no_error_of_ours(served: Served) -> None:
    """An upload cut off by its client is logged as one access line (499), never as a 500 with a
    traceback (the package's server refuses any traceback in its log when it stops)."""
    index = await served.marker()
    for method, route in (("POST", "/v1/digests"), ("PUT", "/v1/documents"), ("POST", "/v1/verify")):
        _reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
        writer.write(
            f"{method} {route} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {served.acme}\r\n"
            "Content-Length: 100000\r\n\r\n".encode()
            + b"x" * 5000
        )
        await writer.drain()
        await asyncio.sleep(0.3)
        writer.transport.abort()
    deadline = time.monotonic() + 10
    while served.log_text().count(" 499 ") < 3 and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert served.log_text().count(" 499 ") >= 3, served.log_text()[-3000:]
    assert "Traceback" not in served.log_text()
    assert await served.marker() == index + 1
