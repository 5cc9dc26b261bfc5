"""kill -9 a real `notar serve --role anchor` at random instants under load, 20+ times, then check
every acknowledged entry against the final published log."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

from merkle import parse_digest
from merkle.checkpoint import parse_checkpoint
from merkle.note import parse_note
from merkle.receipt import build_receipt, verify_receipt
from services.anchor.keys import load_keys
from storage.fs import FsStore
from tests.logaudit import audit
from tests.serving import free_port

ORIGIN = "kill9.notar/log"
KILLS = 20


def start(data: Path, port: int) -> subprocess.Popen[bytes]:
    cmd = [
        sys.executable,
        "-m",
        "services.cli",
        "serve",
        "--role",
        "anchor",
        "--data-dir",
        str(data),
        "--listen",
        f"127.0.0.1:{port}",
        "--origin",
        ORIGIN,
        "--batch-ms",
        "15",
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(data / "serve.log", "ab"), env=env)


async def wait_ready(session: aiohttp.ClientSession, url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert proc.poll() is None, "notar serve exited during start-up"
        try:
            async with session.get(url + "/readyz") as r:
                if r.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.05)
    raise AssertionError("notar serve did not become ready in 30 s")


async def load(
    session: aiohttp.ClientSession,
    url: str,
    counter: list[int],
    acked: list[dict[str, Any]],
    stop: asyncio.Event,
) -> None:
    while not stop.is_set():
        base = counter[0]
        counter[0] += 40
        digests = [f"sha256:{(base + i):064x}" for i in range(40)]
        body = {
            "tenant": "acme",
            "items": [{"digest": d, "salt": (base + i) % 3 != 0} for i, d in enumerate(digests)],
        }
        try:
            async with session.post(url + "/internal/v1/entries", json=body) as r:
                if r.status != 200:
                    await asyncio.sleep(0.01)
                    continue
                answer = await r.json()
        except (TimeoutError, aiohttp.ClientError):
            await asyncio.sleep(0.01)
            continue
        for d, row in zip(digests, answer["results"], strict=True):
            acked.append(
                {"digest": d, "tree_size": answer["tree_size"], "checkpoint": answer["checkpoint"], **row}
            )


async def test_kill_9_under_load_loses_nothing(tmp_path: Path) -> None:
    rng = random.Random(int.from_bytes(os.urandom(4), "big"))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    acked: list[dict[str, Any]] = []
    counter = [0]
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        proc = start(tmp_path, port)
        try:
            for kill in range(KILLS + 1):
                await wait_ready(session, url, proc)
                stop = asyncio.Event()
                workers = [asyncio.create_task(load(session, url, counter, acked, stop)) for _ in range(6)]
                await asyncio.sleep(rng.uniform(0.05, 0.6))
                if kill < KILLS:
                    proc.send_signal(signal.SIGKILL)
                    proc.wait()
                stop.set()
                await asyncio.gather(*workers)
                if kill < KILLS:
                    proc = start(tmp_path, port)
            proc.send_signal(signal.SIGTERM)  # graceful: flush and publish the last batch
            assert proc.wait(timeout=60) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
    assert len(acked) > KILLS * 40, "the load never got through"

    keys = load_keys(tmp_path)
    vkeys = list(keys.verifier_keys.values())
    store = FsStore(tmp_path / "store")
    log = await audit(store, prefix="log/", origin=ORIGIN, log_key=vkeys[0], clock_key=vkeys[1])
    await store.close()
    by_index: dict[int, str] = {}
    seen_checkpoints: set[str] = set()
    for a in acked:
        assert a["index"] not in by_index, f"index {a['index']} was given twice"
        by_index[a["index"]] = a["digest"]
        d = parse_digest(a["digest"])
        entry = d.multihash + bytes.fromhex(a["salt"])
        assert log.entries[a["index"]] == entry, f"acknowledged entry {a['index']} is not in the final log"
        receipt = build_receipt(
            digest=d,
            salt=bytes.fromhex(a["salt"]),
            origin=ORIGIN,
            index=a["index"],
            tree_size=a["tree_size"],
            inclusion=[bytes.fromhex(h) for h in a["inclusion"]],
            checkpoint=a["checkpoint"],
        )
        result = verify_receipt(receipt, keys=vkeys)
        assert result.valid, result.failed
        seen_checkpoints.add(a["checkpoint"])
    for note in seen_checkpoints:
        assert log.consistent_with(parse_checkpoint(parse_note(note).text))
