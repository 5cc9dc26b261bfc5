"""Every answer of a real `notar serve` and `notar witness serve` carries
`X-Content-Type-Options: nosniff` — documents, receipts, tiles, the page, problems, and the
refusals the HTTP parser and the head deadline make before any route runs — and the web page's
policy lets no `data:` URL hold a script (issue 15, item 8)."""

from __future__ import annotations

import json
import os
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import blake3
import pytest

from tests.services.witness.harness import WitnessProcess, keygen
from tests.serving import NotarProcess, notar_serve

ORIGIN = "headers.notar.test/log"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NotarProcess]:
    with notar_serve(tmp_path_factory.mktemp("headers"), ORIGIN, READ_TIMEOUT_S="1") as s:
        yield s


def answer(
    url: str, *, method: str = "GET", body: bytes | None = None, key: str | None = None
) -> tuple[int, dict[str, str]]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    if body is not None:
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            r.read()
            return r.status, dict(r.headers)
    except urllib.error.HTTPError as e:
        e.read()
        return e.code, dict(e.headers)


def raw(port: int, data: bytes, *, wait_s: float = 0.0) -> bytes:
    """What the server answers to `data` sent as it is (then, after `wait_s`, nothing more)."""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
        s.sendall(data)
        time.sleep(wait_s)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
        return out


def test_every_answer_says_nosniff(server: NotarProcess) -> None:
    key = server.env["NOTAR_API_KEY"]
    document = os.urandom(5000)
    digest = "blake3:" + blake3.blake3(document).hexdigest()
    status, _ = answer(server.url + "/v1/documents", method="PUT", body=document, key=key)
    assert status == 201
    receipt_body = json.dumps({"digests": [digest]}).encode()
    cases = {
        "document": ("GET", f"/v1/documents/{digest}", None, key, 200),
        "receipt": ("GET", f"/v1/receipts/{digest}", None, key, 200),
        "digests": ("POST", "/v1/digests", receipt_body, key, 200),
        "keys": ("GET", "/v1/keys", None, None, 200),
        "checkpoint": ("GET", "/log/checkpoint", None, None, 200),
        "tile": ("GET", "/log/tile/entries/000.p/2", None, None, 200),
        "page": ("GET", "/verify", None, None, 200),
        "openapi": ("GET", "/openapi.json", None, None, 200),
        "healthz": ("GET", "/healthz", None, None, 200),
        "metrics": ("GET", "/metrics", None, None, 200),
        "no route": ("GET", "/nowhere", None, None, 404),
        "no key": ("POST", "/v1/digests", receipt_body, None, 401),
        "bad json": ("POST", "/v1/verify", b"{", None, 400),
        "bad digest": ("GET", "/v1/documents/md5:00", None, key, 400),
        "wrong method": ("DELETE", "/v1/keys", None, None, 405),
    }
    for what, (method, path, body, auth, expected) in cases.items():
        status, headers = answer(server.url + path, method=method, body=body, key=auth)
        assert status == expected, (what, status)
        assert headers.get("X-Content-Type-Options") == "nosniff", (what, headers)

    port = int(server.url.rsplit(":", 1)[1])
    refused = raw(port, b"NOT HTTP AT ALL\r\n\r\n")  # the parser refuses it: no route runs
    head = refused.split(b"\r\n\r\n", 1)[0].decode().lower()
    assert head.startswith(("http/1.1 400", "http/1.0 400")) and "x-content-type-options: nosniff" in head, (
        head
    )
    slow = raw(port, b"GET /v1/keys HTTP/1.1\r\nHost: x\r\n", wait_s=2.0)  # the head never ends
    head = slow.split(b"\r\n\r\n", 1)[0].decode().lower()
    assert head.startswith("http/1.1 408") and "x-content-type-options: nosniff" in head, head


def test_the_page_runs_no_data_script(server: NotarProcess) -> None:
    status, headers = answer(server.url + "/verify")
    assert status == 200
    policy = dict(d.strip().split(" ", 1) for d in headers["Content-Security-Policy"].split(";"))
    sources = policy["script-src"].split()
    assert sources and all(s.startswith("'sha256-") for s in sources), sources
    assert "default-src" in policy and "data:" not in policy["default-src"]


def test_the_witness_says_nosniff_too(tmp_path: Path) -> None:
    log_key = keygen(tmp_path / "log-keys", "headers.notar.test/witnessed")  # a key to name a log
    logs = tmp_path / "logs.txt"
    logs.write_text(log_key + "\n")
    keygen(tmp_path / "witness", "headers.notar.test/witness")
    witness = WitnessProcess(tmp_path / "witness", logs).start()
    try:
        for path, expected in (("/healthz", 200), ("/nowhere", 404)):
            status, headers = answer(witness.url + path)
            assert status == expected and headers.get("X-Content-Type-Options") == "nosniff", (path, headers)
        status, headers = answer(witness.url + "/add-checkpoint", method="POST", body=b"garbage")
        assert status >= 400 and headers.get("X-Content-Type-Options") == "nosniff", headers
    finally:
        witness.stop()
