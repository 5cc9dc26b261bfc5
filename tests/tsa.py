"""A real RFC 3161 TSA for tests: `openssl ts -reply` behind a small aiohttp server on loopback.

`make_pki` creates, with the openssl command line, an EC P-256 CA and a TSA certificate signed by
it with a critical extendedKeyUsage of timeStamping alone. `LocalTsa` serves time-stamp replies on
a free port; its `mode` turns it into a faulty TSA: "garbage" (200 with junk bytes), "random" (200
with `random_bytes` fresh random bytes), "error" (HTTP 500), "refuse" (a granted-less
TimeStampResp), "untrusted" (signed by a TSA the CA never certified), "wrong-nonce" and
"wrong-imprint" (a sound token from the trusted TSA, but for a request with another nonce or
another message imprint), "slow" (a sound reply after `slow_s` seconds). The default mode "ok"
answers every request at once. `answers` counts the replies given per mode; `bad_tokens` keeps
every token it signed in a faulty mode, so a test can check none of them was kept.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web
from asn1crypto import core, tsp

TSA_CONFIG = """\
[tsa]
default_tsa = tsa_config
[tsa_config]
serial = {dir}/serial
crypto_device = builtin
signer_digest = sha256
default_policy = 1.3.6.1.4.1.99999.1
digests = sha256, sha384, sha512
accuracy = secs:1
ordering = no
tsa_name = yes
ess_cert_id_chain = no
ess_cert_id_alg = sha256
"""
TSA_EXTENSIONS = """\
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=critical,timeStamping
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid
"""


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@dataclass(frozen=True)
class Pki:
    dir: Path
    ca_cert: Path
    tsa_cert: Path
    tsa_key: Path
    rogue_cert: Path
    rogue_key: Path
    config: Path


def _ca(d: Path, name: str, cn: str) -> None:
    _openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", f"{name}.key", cwd=d)
    _openssl("req", "-new", "-x509", "-key", f"{name}.key", "-subj", f"/CN={cn}", "-days", "3650",
             "-out", f"{name}.crt", "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)


def _tsa(d: Path, name: str, cn: str, ca: str) -> None:
    _openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", f"{name}.key", cwd=d)
    _openssl("req", "-new", "-key", f"{name}.key", "-subj", f"/CN={cn}", "-out", f"{name}.csr", cwd=d)
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
             "-CAcreateserial", "-days", "3650", "-extfile", "tsa.ext", "-out", f"{name}.crt", cwd=d)


def make_pki(d: Path) -> Pki:
    d.mkdir(parents=True, exist_ok=True)
    (d / "tsa.ext").write_text(TSA_EXTENSIONS)
    (d / "serial").write_text("01\n")
    (d / "ts.cnf").write_text(TSA_CONFIG.format(dir=d))
    _ca(d, "ca", "notar test CA")
    _tsa(d, "tsa", "notar test TSA", "ca")
    _ca(d, "rogue-ca", "rogue CA")
    _tsa(d, "rogue", "rogue TSA", "rogue-ca")
    return Pki(d, d / "ca.crt", d / "tsa.crt", d / "tsa.key", d / "rogue.crt", d / "rogue.key", d / "ts.cnf")


def _altered(query: bytes, mode: str) -> bytes:
    """The TimeStampReq ``query`` with another nonce ("wrong-nonce") or imprint ("wrong-imprint")."""
    req = tsp.TimeStampReq.load(query)
    if mode == "wrong-nonce":
        req["nonce"] = (int(req["nonce"].native or 0) + 1) % (1 << 63)
    else:
        imprint = bytes(req["message_imprint"]["hashed_message"].native)
        req["message_imprint"]["hashed_message"] = bytes(b ^ 0xFF for b in imprint)
    altered: bytes = req.dump(force=True)
    return altered


class LocalTsa:
    def __init__(self, pki: Pki) -> None:
        self.pki = pki
        self.mode = "ok"
        self.requests = 0
        self.slow_s = 20.0  # longer than the client's timeout (Rfc3161Config.timeout_s, 15 s)
        self.random_bytes = 512
        self.answers: Counter[str] = Counter()  # replies given, by the mode they were given in
        self.bad_tokens: set[bytes] = set()  # DER tokens signed in the wrong-* and untrusted modes
        self._lock = asyncio.Lock()
        self._runner: web.AppRunner | None = None
        self.url = ""
        self.port = 0

    async def _reply(self, request: web.Request) -> web.Response:
        self.requests += 1
        mode = self.mode  # as it was when the request came
        query = await request.read()
        self.answers[mode] += 1
        if mode == "slow":
            await asyncio.sleep(self.slow_s)
        if mode == "error":
            return web.Response(status=500, text="TSA on fire\n")
        if mode == "garbage":
            return web.Response(body=b"\x30\x03garbage", content_type="application/timestamp-reply")
        if mode == "random":
            body = os.urandom(self.random_bytes)
            return web.Response(body=body, content_type="application/timestamp-reply")
        if request.content_type != "application/timestamp-query":
            return web.Response(status=415)
        if mode in ("wrong-nonce", "wrong-imprint"):
            query = _altered(query, mode)
        signer = (self.pki.rogue_cert, self.pki.rogue_key) if mode == "untrusted" else (
            self.pki.tsa_cert, self.pki.tsa_key)
        async with self._lock:
            with tempfile.TemporaryDirectory() as tmp:
                q, r = Path(tmp) / "q.tsq", Path(tmp) / "r.tsr"
                q.write_bytes(query)
                proc = await asyncio.create_subprocess_exec(
                    "openssl", "ts", "-reply", "-config", str(self.pki.config), "-queryfile", str(q),
                    "-signer", str(signer[0]), "-inkey", str(signer[1]), "-out", str(r),
                    stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
                )
                _, err = await proc.communicate()
                if proc.returncode != 0:
                    return web.Response(status=500, text=err.decode())
                body = r.read_bytes()
        if mode in ("untrusted", "wrong-nonce", "wrong-imprint"):
            self.bad_tokens.add(core.Sequence.load(body)[1].dump())
        if mode == "refuse":
            body = bytes.fromhex("30053003020102")  # TimeStampResp, PKIStatus rejection(2)
        return web.Response(body=body, content_type="application/timestamp-reply")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/", self._reply)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True)
        await site.start()
        self.port = self._runner.addresses[0][1]  # kept: a restart listens on the same port
        self.url = f"http://127.0.0.1:{self.port}/"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
