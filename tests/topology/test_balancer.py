"""The load balancer alone (loadtest/balancer.py): Debian's haproxy routes each path to the role
that serves it, refuses the internal routes, and answers 503 problem+json with Retry-After when no
pod of a route is ready — checked against two tiny stand-in pods that name themselves."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from loadtest.balancer import Balancer, find_haproxy, served_by
from tests.needs import missing
from tests.seaweed import free_ports


async def pod(name: str, port: int) -> web.AppRunner:
    async def answer(request: web.Request) -> web.Response:
        return web.Response(text=f"{name} {request.method} {request.path}")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


@pytest.fixture
async def balancer(tmp_path: Path) -> AsyncIterator[tuple[Balancer, list[web.AppRunner]]]:
    binary = find_haproxy()
    if binary is None:
        missing("haproxy is not installed (scripts/install --test)")
    front, ingest, verify, nobody = free_ports(4)
    runners = [await pod("ingest", ingest), await pod("verify", verify)]
    lb = Balancer(front, tmp_path, binary)
    try:
        lb.start([ingest, nobody], [verify])  # one ingest pod never up
        await asyncio.to_thread(lb.wait_ready)
        yield lb, runners
    finally:
        if lb.process is not None:
            lb.process.terminate()
            lb.process.wait(timeout=10)
        for r in runners:
            await r.cleanup()


async def test_each_route_reaches_its_role_and_internal_routes_are_refused(
    balancer: tuple[Balancer, list[web.AppRunner]],
) -> None:
    lb, _ = balancer
    async with aiohttp.ClientSession() as s:
        for method, path, want in (
            ("POST", "/v1/digests", "ingest"),
            ("PUT", "/v1/documents", "ingest"),
            ("GET", "/v1/documents/sha256:00", "ingest"),
            ("GET", "/v1/receipts/sha256:00", "verify"),
            ("GET", "/log/checkpoint", "verify"),
            ("GET", "/v1/keys", "verify"),
        ):
            for _ in range(4):  # whichever ingest server it picks, the one down is never answered
                async with s.request(method, lb.url + path) as r:
                    assert r.status == 200, (path, r.status)
                    assert await r.text() == f"{want} {method} {path}"
        async with s.post(lb.url + "/internal/v1/entries") as r:
            assert r.status == 404
            assert r.content_type == "application/problem+json"
            assert (await r.json())["status"] == 404
    async with asyncio.timeout(10):  # haproxy writes its log lines as it goes
        while not served_by(lb.log.read_text())[("verify", "verify0", 200)] >= 12:
            await asyncio.sleep(0.1)
    served = served_by(lb.log.read_text())
    assert served[("ingest", "ingest0", 200)] == 12 and not served[("ingest", "ingest1", 200)]


async def test_no_ready_pod_is_a_503_with_retry_after_in_notars_shape(
    balancer: tuple[Balancer, list[web.AppRunner]],
) -> None:
    lb, runners = balancer
    await runners[1].cleanup()  # the only verify pod goes away
    async with aiohttp.ClientSession() as s, asyncio.timeout(20):
        while True:  # until its health check marks it down (inter 500 ms, fall 2)
            async with s.get(lb.url + "/v1/keys") as r:
                if r.status == 503:
                    assert r.headers["Retry-After"] == "1"
                    assert r.content_type == "application/problem+json"
                    body = await r.json()
                    assert body["status"] == 503 and body["type"] == "urn:notar:problem:pushback"
                    break
            await asyncio.sleep(0.1)
        async with s.post(lb.url + "/v1/digests") as r:
            assert r.status == 200, "the ingest route still works"
