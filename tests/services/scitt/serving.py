"""A real `notar serve` with SCITT issuers registered (`serve`), and the HTTP calls the SCITT tests
make of it (`post`, `get`): shared by test_scitt_serve.py and test_scitt_page.py."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from cryptography.hazmat.primitives import serialization

from tests.services.scitt.thirdparty import IssuerKey, certificate_chain
from tests.serving import free_port, wait_ready

NOTAR = str(Path(sys.executable).with_name("notar"))
ISS = "https://issuer.example"
CONCISE = "application/concise-problem-details+cbor"


@dataclass
class Served:
    url: str
    env: dict[str, str]
    api_key: str
    keys: dict[str, IssuerKey]
    x5: IssuerKey
    x5_leaf_der: bytes


def notar(*args: str, env: dict[str, str]) -> str:
    r = subprocess.run([NOTAR, *args], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def serve(tmp: Path, **settings: str) -> Iterator[Served]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "NOTAR_DATA_DIR": str(tmp / "data"),
        "NOTAR_ORIGIN": "scitt.notar.test/log",
        "NOTAR_LISTEN": f"127.0.0.1:{port}",
        "NOTAR_BATCH_MS": "20",
        "NOTAR_KEY_CACHE_S": "1",
        **{f"NOTAR_{k}": v for k, v in settings.items()},
    }
    proc = subprocess.Popen([NOTAR, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_ready(url, proc, timeout=60)
        api_key = notar("tenant", "add", "acme", env=env).strip().splitlines()[-1]
        keys = {alg: IssuerKey.generate(alg) for alg in ("ES256", "ES384", "EdDSA")}
        for alg, key in keys.items():
            pem = tmp / f"{alg}.pem"
            pem.write_bytes(key.pem)
            out = notar("tenant", "issuer", "add", "acme", "--iss", ISS, "--key", str(pem), env=env)
            assert out.strip().splitlines()[-1] == key.kid.hex()  # SHA-256 of its SubjectPublicKeyInfo
        x5 = IssuerKey.generate("ES256")
        ca, leaf = certificate_chain(x5)
        (tmp / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
        (tmp / "x5.pem").write_bytes(x5.pem)
        args = [
            "--iss",
            "https://x5.example",
            "--key",
            str(tmp / "x5.pem"),
            "--x5-anchor",
            str(tmp / "ca.pem"),
        ]
        notar("tenant", "issuer", "add", "acme", *args, env=env)
        yield Served(url, env, api_key, keys, x5, leaf.public_bytes(serialization.Encoding.DER))
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err.decode()[-2000:]
        assert b"Traceback" not in err, err.decode()[-2000:]


async def post(
    s: Served, body: bytes, *, key: str | None = None, ctype: str = "application/cose"
) -> aiohttp.ClientResponse:
    headers = {"Content-Type": ctype, "Authorization": f"Bearer {key or s.api_key}"}
    async with aiohttp.ClientSession() as http:
        r = await http.post(s.url + "/entries", data=body, headers=headers, allow_redirects=False)
        await r.read()
        return r


async def get(s: Served, path: str) -> aiohttp.ClientResponse:
    async with aiohttp.ClientSession() as http:
        r = await http.get(s.url + path, allow_redirects=False)
        await r.read()
        return r
