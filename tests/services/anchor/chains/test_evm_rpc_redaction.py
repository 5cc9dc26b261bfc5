"""EVM RPC errors name the endpoint without its credentials.

Regression: RpcError messages carried EVM_RPC whole; providers put API keys in the URL
(`https://mainnet.infura.io/v3/<key>`), and these messages go to the logs, to the anchor's
/readyz details and to `notar verify --online`'s output.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from services.anchor.chains.evm_rpc import JsonRpc, RpcError, redact_url
from tests.serving import free_port

SECRET = "k3y-6f1d0c9e8b7a"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (f"https://mainnet.infura.io/v3/{SECRET}", "https://mainnet.infura.io/…"),
        (f"https://user:{SECRET}@rpc.example:8545", "https://rpc.example:8545"),
        (f"http://127.0.0.1:8545/?apikey={SECRET}", "http://127.0.0.1:8545/…"),
        ("http://[::1]:8545/", "http://[::1]:8545"),
        ("http://127.0.0.1:8545", "http://127.0.0.1:8545"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


async def _server(handler: Callable[[web.Request], Awaitable[web.Response]]) -> TestServer:
    app = web.Application()
    app.router.add_post("/{tail:.*}", handler)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    return server


async def _error_of(rpc: JsonRpc) -> str:
    try:
        with pytest.raises(RpcError) as e:
            await rpc.call("eth_chainId")
        return str(e.value)
    finally:
        await rpc.close()


async def test_http_and_node_errors_hide_the_key() -> None:
    async def http_500(request: web.Request) -> web.Response:
        return web.Response(status=500, text="boom")

    async def node_error(request: web.Request) -> web.Response:
        return web.json_response({"jsonrpc": "2.0", "id": 1, "error": {"code": -32000, "message": "nope"}})

    async def not_json_rpc(request: web.Request) -> web.Response:
        return web.json_response([1, 2])

    for handler, words in ((http_500, "HTTP 500"), (node_error, "nope"), (not_json_rpc, "no JSON-RPC")):
        server = await _server(handler)
        port = server.port
        try:
            message = await _error_of(JsonRpc(f"http://user:{SECRET}@127.0.0.1:{port}/v3/{SECRET}"))
        finally:
            await server.close()
        assert words in message and f"127.0.0.1:{port}" in message
        assert SECRET not in message, message


async def test_transport_errors_hide_the_key() -> None:
    port = free_port()  # nothing listens there
    message = await _error_of(JsonRpc(f"http://127.0.0.1:{port}/v3/{SECRET}?apikey={SECRET}"))
    assert f"127.0.0.1:{port}" in message and SECRET not in message, message
