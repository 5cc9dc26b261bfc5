"""GET /v1/tsa-ca: the TSA CA certificates of TSA_CA_FILE as PEM, which the web verifier offers to
check RFC 3161 anchors against; a 404 problem when the server names none (the page then asks for a
pasted CA, or leaves the anchors not checked)."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from cryptography import x509

from services.anchor.app import ensure_keys
from services.cli.serve import build_app
from tests.services.conftest import config_for
from tests.tsa import make_pki


async def tsa_ca(tmp: Path, request: pytest.FixtureRequest, **extra: str) -> tuple[int, str, bytes]:
    config, env = config_for("fs", tmp, request, **extra)
    ensure_keys(config.keys)
    async with TestClient(TestServer(build_app("all", config, env))) as client:
        r = await client.get("/v1/tsa-ca")
        return r.status, r.content_type, await r.read()


async def test_the_tsa_ca_is_served_as_pem_and_a_server_without_one_says_so(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    pki = make_pki(tmp_path / "pki")
    both = tmp_path / "cas.pem"
    both.write_bytes(pki.ca_cert.read_bytes() + (pki.dir / "rogue-ca.crt").read_bytes())
    status, kind, body = await tsa_ca(tmp_path / "one", request, TSA_CA_FILE=str(both))
    assert (status, kind) == (200, "application/pem-certificate-chain")
    served = x509.load_pem_x509_certificates(body)
    assert served == x509.load_pem_x509_certificates(both.read_bytes()), "every CA of the file, in order"
    status, kind, body = await tsa_ca(tmp_path / "none", request)
    assert (status, kind) == (404, "application/problem+json"), body
    assert b"TSA_CA_FILE is not set" in body
