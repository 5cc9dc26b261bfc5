"""A live `notar serve` and what the web verifier tests need around it: the `notar` command,
Chromium and playwright-core, receipts anchored by the server (its local blocks, and tokens of
the test TSA of tests/tsa.py that it asked), and RFC 3161 tokens from that TSA (openssl ts)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import json
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from asn1crypto import tsp

from services.published.anchors import AnchorStore
from storage.fs import FsStore
from tests.needs import missing as needed
from tests.serving import notar_serve
from tests.tsa import LocalTsa, Pki

REPO = Path(__file__).resolve().parents[3]
DRIVER = Path(__file__).with_name("web_verifier.mjs")
CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = REPO / "build" / "verify-page"
NOTAR = str(Path(sys.executable).with_name("notar"))
Receipt = dict[str, Any]


def browser_tools() -> str:
    """The node executable; skips (fails under CI=true) when Chromium or playwright-core is missing."""
    node = shutil.which("node")
    missing = [
        what
        for what, ok in (
            ("node (apt-get install nodejs npm)", node is not None),
            ("/usr/bin/chromium (apt-get install -y chromium)", CHROMIUM.exists()),
            ("node_modules/playwright-core (npm ci)", (REPO / "node_modules" / "playwright-core").is_dir()),
        )
        if not ok
    ]
    if missing:
        message = "the web verifier tests need " + ", ".join(missing) + ": run scripts/install --test"
        needed(message)
    assert node is not None
    return node


@dataclass
class Serve:
    proc: subprocess.Popen[bytes]
    url: str
    env: dict[str, str]
    data: Path
    log_key: str
    clock_key: str


def notar(*args: str, env: dict[str, str]) -> str:
    r = subprocess.run([NOTAR, *args], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


@contextlib.contextmanager
def serve(data: Path, origin: str, **settings: str) -> Iterator[Serve]:
    """`notar serve` on a free loopback port, with `settings` (NAME=value, as NOTAR_NAME), and a
    tenant `court` whose API key is in its env."""
    with notar_serve(data, origin, tenant="court", **settings) as served:
        log_key, clock_key = served.keys[:2]  # one log: its two keys
        yield Serve(served.proc, served.url, served.env, data, log_key, clock_key)


def notarize_digest(server: Serve, digest: str) -> Receipt:
    body = json.dumps({"digests": [digest]}).encode()
    request = urllib.request.Request(
        server.url + "/v1/digests",
        data=body,
        headers={
            "Authorization": "Bearer " + server.env["NOTAR_API_KEY"],
            "Content-Type": "application/json",
        },
    )
    with urllib.request.urlopen(request, timeout=30) as r:
        receipt: Receipt = json.loads(r.read())["receipts"][0]
    return receipt


def anchored(server: Serve, receipt: Receipt, kinds: tuple[str, ...] = ("local",)) -> Receipt:
    """`receipt` against the earliest checkpoint that the server anchored with each of `kinds`."""
    index = receipt["log"]["index"]

    async def first() -> tuple[int, str, list[dict[str, Any]]]:
        store = AnchorStore(FsStore(server.data / "store"), refresh_s=0.0)
        deadline = time.monotonic() + 60
        while True:
            for size in [s for s in await store.sizes() if s > index]:
                found = await store.anchors_for(size)
                if found is not None and set(kinds) <= {r["type"] for r in found.records}:
                    return found.size, found.note, list(found.records)
            assert time.monotonic() < deadline, f"no checkpoint anchored with {kinds} in 60 s"
            await asyncio.sleep(0.2)

    size, note, records = asyncio.run(first())
    proof = _get(f"{server.url}/v1/proofs/inclusion?index={index}&size={size}")["proof"]
    out = copy.deepcopy(receipt)
    out["log"].update(tree_size=size, inclusion=proof)
    out["checkpoint"], out["anchors"] = note, records
    return out


def body_of(note: str) -> str:
    return note[: note.find("\n\n") + 1]


def _query(body: str, work: Path) -> Path:
    """work/q.tsq: a TimeStampReq (openssl ts -query, certReq) over SHA-256 of `body`."""
    work.mkdir(parents=True, exist_ok=True)
    (work / "body").write_text(body, encoding="utf-8")
    query = ["openssl", "ts", "-query", "-data", "body", "-sha256", "-cert", "-out", "q.tsq"]
    subprocess.run(query, cwd=work, check=True, capture_output=True)
    return work / "q.tsq"


def timestamp_token(pki: Pki, body: str, work: Path) -> str:
    """A DER RFC 3161 token over SHA-256 of `body` from the test TSA (openssl ts), in base64."""
    _query(body, work)
    reply = [
        "openssl",
        "ts",
        "-reply",
        "-config",
        str(pki.config),
        "-queryfile",
        "q.tsq",
        "-signer",
        str(pki.tsa_cert),
        "-inkey",
        str(pki.tsa_key),
        "-token_out",
        "-out",
        "token.der",
    ]
    subprocess.run(reply, cwd=work, check=True, capture_output=True)
    return base64.b64encode((work / "token.der").read_bytes()).decode()


@contextlib.contextmanager
def running_tsa(pki: Pki, mode: str = "ok") -> Iterator[LocalTsa]:
    """The test TSA of tests/tsa.py (openssl ts behind aiohttp) in `mode`, on a loopback port,
    served from its own thread for tests that are not asyncio themselves."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name=f"tsa-{mode}", daemon=True)
    thread.start()
    tsa = LocalTsa(pki)
    tsa.mode = mode
    try:
        asyncio.run_coroutine_threadsafe(tsa.start(), loop).result(timeout=30)
        yield tsa
    finally:
        asyncio.run_coroutine_threadsafe(tsa.stop(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=30)
        loop.close()


def token_from(tsa: LocalTsa, body: str, work: Path) -> str:
    """The token `tsa` answers over HTTP for a query (openssl ts -query) over SHA-256 of `body`,
    in base64."""
    request = urllib.request.Request(
        tsa.url,
        data=_query(body, work).read_bytes(),
        headers={"Content-Type": "application/timestamp-query"},
    )
    with urllib.request.urlopen(request, timeout=30) as r:
        reply = r.read()
    answer = tsp.TimeStampResp.load(reply)
    assert answer["status"]["status"].native == "granted", answer["status"].native
    return base64.b64encode(answer["time_stamp_token"].dump()).decode()
