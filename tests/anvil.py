"""A real anvil (npm @foundry-rs/anvil) on a free loopback port, and a TCP proxy that can cut it off.

`scripts/install --test` installs anvil with `npm ci`; in CI (CI=true) a missing binary fails the
tests instead of skipping them.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import aiohttp

from tests.needs import missing
from tests.serving import free_port

ROOT = Path(__file__).resolve().parents[1]
ANVIL = ROOT / "node_modules" / "@foundry-rs" / "anvil-linux-amd64" / "bin" / "anvil"
# anvil's first default account (mnemonic "test test ... junk"), funded with 10,000 ETH.
KEY0 = "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
KEY1 = "59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"


def anvil_binary() -> Path:
    if not ANVIL.exists():
        missing(f"anvil is not installed at {ANVIL} (run scripts/install --test: it runs npm ci)")
    return ANVIL


class Anvil:
    """One anvil on a free port, kept across restarts. ``block_time`` (seconds, fractions allowed)
    mines a block at that interval instead of one per transaction; ``state`` is a file the chain
    is dumped to when anvil stops (SIGTERM) and loaded from when it starts again (``--state``)."""

    def __init__(
        self, *, mining: bool = True, block_time: float | None = None, state: Path | None = None
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._mining = mining
        self._block_time = block_time
        self._state = state
        self._proc: subprocess.Popen[bytes] | None = None
        self._ids = 0

    def start(self) -> None:
        args = [str(anvil_binary()), "--host", "127.0.0.1", "--port", str(self.port), "--silent"]
        if not self._mining:
            args.append("--no-mining")
        if self._block_time is not None:
            args += ["--block-time", f"{self._block_time:g}"]
        if self._state is not None:
            args += ["--state", str(self._state)]
        self._proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.2):
                return
            if self._proc.poll() is not None:
                raise RuntimeError(f"anvil exited with {self._proc.returncode}")
            time.sleep(0.05)
        raise RuntimeError("anvil did not start listening within 20 s")

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc = None

    def kill9(self) -> None:
        """SIGKILL: the chain since the last dump of its state is lost."""
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait(10)
            self._proc = None

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    async def rpc(self, method: str, *params: Any) -> Any:
        self._ids += 1
        body = {"jsonrpc": "2.0", "id": self._ids, "method": method, "params": list(params)}
        async with aiohttp.ClientSession() as s, s.post(self.url, json=body) as resp:
            answer = await resp.json()
        if answer.get("error"):
            raise RuntimeError(f"{method}: {answer['error']}")
        return answer["result"]

    async def mine(self, blocks: int = 1) -> None:
        await self.rpc("anvil_mine", hex(blocks))

    async def head(self) -> int:
        return int(await self.rpc("eth_blockNumber"), 16)


class TcpProxy:
    """Forwards a loopback port to `target_port`; `cut()` closes the listener and every open
    connection (the RPC is down), `restore()` listens again on the same port."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_writer}
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        self._writers -= {writer, up_writer}

    async def restore(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port, reuse_address=True)

    async def cut(self) -> None:
        if self._server is not None:
            self._server.close()
            for w in list(self._writers):
                w.close()
            await self._server.wait_closed()
            self._server = None
