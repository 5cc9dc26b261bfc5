"""`notar verify --online`'s `published log` check (services/cli/verify_online.py): the receipt's
tree is in the log as the server publishes it now, with the consistency proof from /v1/proofs or,
when that route cannot be reached, from the log's tiles; a proof that does not hold fails it; a
server that does not answer leaves a note and no check."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from merkle.checkpoint import parse_checkpoint
from merkle.note import parse_note
from services.cli import main
from tests.seaweed import free_ports
from tests.services.conftest import Notar
from tests.services.proxy import proxy


async def notarized(notar: Notar, tmp_path: Path) -> Path:
    """A receipt of an early tree, after which the log grew and was published."""
    c = notar.client
    one = [f"sha256:{os.urandom(32).hex()}"]
    first = await (await c.post("/v1/digests", json={"digests": one}, headers=notar.acme)).json()
    receipt = first["receipts"][0]
    more = [f"sha256:{os.urandom(32).hex()}" for _ in range(300)]
    answer = await (await c.post("/v1/digests", json={"digests": more}, headers=notar.acme)).json()
    last = answer["receipts"][-1]
    for _ in range(200):
        cp = parse_checkpoint(parse_note(await (await c.get("/log/checkpoint")).text()).text)
        if cp.size >= last["log"]["tree_size"]:
            break
        await asyncio.sleep(0.05)
    path = tmp_path / "r.receipt.json"
    path.write_text(json.dumps(receipt))
    return path


async def verify_online(notar: Notar, receipt: Path, url: str) -> tuple[int, dict[str, Any], str]:
    args = ["verify", str(receipt), *(a for k in notar.keys for a in ("--key", k)), "--json", "--online",
            "--url", url]

    def run() -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(args)
        return code, out.getvalue(), err.getvalue()

    code, out, err = await asyncio.to_thread(run)
    return code, json.loads(out), err


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


def log_check(verdict: dict[str, Any]) -> dict[str, Any] | None:
    return next((c for c in verdict["checks"] if c["name"] == "published log"), None)


@pytest.mark.parametrize("notar", ["fs"], indirect=True)
async def test_the_published_log_check(notar: Notar, tmp_path: Path, session: aiohttp.ClientSession) -> None:
    receipt = await notarized(notar, tmp_path)
    url = str(notar.client.make_url("")).rstrip("/")
    code, verdict, _ = await verify_online(notar, receipt, url)
    check = log_check(verdict)
    assert code == 0 and check is not None and check["status"] == "ok", verdict
    assert "contains this receipt's tree of 1" in check["detail"]

    servers = {
        "missing": TestServer(proxy(url, session, missing=404)),
        "altered": TestServer(proxy(url, session)),
    }
    for server in servers.values():
        await server.start_server()
    try:
        missing, altered = (str(servers[k].make_url("")).rstrip("/") for k in ("missing", "altered"))
        code, verdict, _ = await verify_online(notar, receipt, missing)
        check = log_check(verdict)
        assert code == 0 and check is not None and check["status"] == "ok", verdict  # from the tiles
        code, verdict, _ = await verify_online(notar, receipt, altered)
        check = log_check(verdict)
        assert code == 1 and check is not None and check["status"] == "failed", verdict
        assert [c["name"] for c in verdict["checks"] if c["status"] == "failed"] == ["published log"]
    finally:
        for server in servers.values():
            await server.close()

    (refused,) = free_ports(1)
    code, verdict, _ = await verify_online(notar, receipt, f"http://127.0.0.1:{refused}")
    assert code == 0 and log_check(verdict) is None and verdict["valid"], verdict
    assert any("was not checked against" in n for n in verdict["notes"]), verdict["notes"]
