"""A real RFC 3161 TSA for tests: `openssl ts -reply` behind a small aiohttp server on loopback.

`make_pki` creates, with the openssl command line, an EC P-256 CA and a TSA certificate signed by
it with a critical extendedKeyUsage of timeStamping alone. `LocalTsa` serves time-stamp replies on
a free port; its `mode` turns it into a faulty TSA: "garbage" (200 with junk bytes), "error" (HTTP
500), "refuse" (a granted-less TimeStampResp), "untrusted" (signed by a TSA the CA never certified).
"""

from __future__ import annotations

import asyncio
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

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


class LocalTsa:
    def __init__(self, pki: Pki) -> None:
        self.pki = pki
        self.mode = "ok"
        self.requests = 0
        self._lock = asyncio.Lock()
        self._runner: web.AppRunner | None = None
        self.url = ""
        self.port = 0

    async def _reply(self, request: web.Request) -> web.Response:
        self.requests += 1
        query = await request.read()
        if self.mode == "error":
            return web.Response(status=500, text="TSA on fire\n")
        if self.mode == "garbage":
            return web.Response(body=b"\x30\x03garbage", content_type="application/timestamp-reply")
        if request.content_type != "application/timestamp-query":
            return web.Response(status=415)
        signer = (self.pki.rogue_cert, self.pki.rogue_key) if self.mode == "untrusted" else (
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
        if self.mode == "refuse":
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
