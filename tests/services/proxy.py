"""A proxy in front of a notar server whose `/v1/proofs` is missing or lies, for the tests of
proofs computed from tiles (services/tile_proofs.py, services/cli/verify_online.py)."""

from __future__ import annotations

import json

import aiohttp
from aiohttp import web


def proxy(upstream: str, session: aiohttp.ClientSession, *, missing: int | None = None) -> web.Application:
    """`upstream` as it is, except /v1/proofs/…: answered `missing` (a status: a route table
    without the route) when given, else with each consistency proof's first hash altered."""

    async def forward(request: web.Request) -> web.StreamResponse:
        if request.path.startswith("/v1/proofs") and missing is not None:
            return web.Response(status=missing, text="not here")
        async with session.get(upstream + request.path_qs) as r:
            body = await r.read()
            if request.path == "/v1/proofs/consistency" and r.status == 200:
                answer = json.loads(body)
                first = answer["proof"][0]
                answer["proof"][0] = ("0" if first[0] != "0" else "1") + first[1:]
                body = json.dumps(answer).encode()
            return web.Response(status=r.status, body=body, headers={"Content-Type": r.content_type})

    app = web.Application()
    app.router.add_get("/{tail:.*}", forward)
    return app
