"""A small Ethereum JSON-RPC client over aiohttp: the calls the EVM anchor needs, nothing more.

Transport failures, HTTP errors and JSON-RPC errors all raise ``RpcError`` naming the endpoint and
the method; ``code`` and ``message`` carry the node's own error when it sent one. The endpoint is
named by scheme, host and port only: providers put API keys in the path or query
(``https://mainnet.infura.io/v3/<key>``), and these messages reach logs and ``/readyz``.
"""

from __future__ import annotations

import itertools
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from services.anchor.chains import AnchorError


class RpcError(AnchorError):
    def __init__(self, message: str, *, method: str, code: int | None = None, node_message: str = "") -> None:
        super().__init__(message)
        self.method, self.code, self.node_message = method, code, node_message


def quantity(value: Any) -> int:
    if not isinstance(value, str) or not value.startswith("0x"):
        raise ValueError(f"expected a hex quantity, got {value!r}")
    return int(value, 16)


def redact_url(url: str) -> str:
    """``url`` without credentials, path or query: ``scheme://host:port``, then ``/…`` if it had more."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname or "", parts.port
    except ValueError:
        return "<the configured URL>"
    if ":" in host:
        host = f"[{host}]"
    more = parts.path not in ("", "/") or parts.query or parts.fragment
    return f"{parts.scheme}://{host}{f':{port}' if port else ''}{'/…' if more else ''}"


class JsonRpc:
    def __init__(
        self, url: str, *, session: aiohttp.ClientSession | None = None, timeout_s: float = 10.0
    ) -> None:
        self.url = url
        self.where = redact_url(url)
        self._session, self._own = session, session is None
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._ids = itertools.count(1)

    async def call(self, method: str, *params: Any) -> Any:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        body = {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": list(params)}
        try:
            async with self._session.post(self.url, json=body, timeout=self._timeout) as resp:
                if resp.status != 200:
                    raise RpcError(
                        f"the EVM RPC at {self.where} answered HTTP {resp.status} to {method}", method=method
                    )
                answer = await resp.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as e:
            detail = repr(e).replace(self.url, self.where)
            raise RpcError(f"the EVM RPC at {self.where} failed on {method}: {detail}", method=method) from e
        if not isinstance(answer, dict):
            raise RpcError(f"the EVM RPC at {self.where} sent no JSON-RPC object for {method}", method=method)
        if answer.get("error") is not None:
            err = answer["error"] if isinstance(answer["error"], dict) else {"message": str(answer["error"])}
            msg = str(err.get("message", ""))
            code = err.get("code")
            raise RpcError(
                f"the EVM RPC at {self.where} refused {method}: {msg}",
                method=method,
                code=code if isinstance(code, int) else None,
                node_message=msg,
            )
        return answer.get("result")

    async def chain_id(self) -> int:
        return quantity(await self.call("eth_chainId"))

    async def block_number(self) -> int:
        return quantity(await self.call("eth_blockNumber"))

    async def nonce(self, address: str, tag: str = "latest") -> int:
        return quantity(await self.call("eth_getTransactionCount", address, tag))

    async def balance(self, address: str) -> int:
        return quantity(await self.call("eth_getBalance", address, "latest"))

    async def receipt(self, tx_hash: str) -> dict[str, Any] | None:
        result = await self.call("eth_getTransactionReceipt", tx_hash)
        return result if isinstance(result, dict) else None

    async def transaction(self, tx_hash: str) -> dict[str, Any] | None:
        result = await self.call("eth_getTransactionByHash", tx_hash)
        return result if isinstance(result, dict) else None

    async def block(self, tag: int | str) -> dict[str, Any] | None:
        ref = hex(tag) if isinstance(tag, int) else tag
        result = await self.call("eth_getBlockByNumber", ref, False)
        return result if isinstance(result, dict) else None

    async def block_hash(self, number: int) -> str | None:
        block = await self.block(number)
        return str(block["hash"]).lower() if block and block.get("hash") else None

    async def send_raw(self, raw: bytes) -> str:
        return str(await self.call("eth_sendRawTransaction", "0x" + raw.hex()))

    async def close(self) -> None:
        if self._own and self._session is not None:
            await self._session.close()
            self._session = None
