"""The rfc3161 backend and offline token verification against a real TSA (`openssl ts -reply`
with an EC P-256 certificate): tokens that verify, tokens that are altered or badly issued, and a
TSA that is down, refuses, or answers garbage."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from asn1crypto import cms
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from merkle import Anchor, AnchorTarget, Status
from merkle.anchors.rfc3161 import load_certificates, rfc3161_anchor_verifier, verify_token
from services.anchor.chains import AnchorError, Target
from services.anchor.chains.rfc3161 import Rfc3161Config, TsaClient
from storage.errors import ConfigError
from tests.tsa import LocalTsa, Pki

MakeTarget = Callable[[int], Target]


def client(tsa: LocalTsa, pki: Pki) -> TsaClient:
    return TsaClient.from_config(Rfc3161Config(url=tsa.url, ca_file=pki.ca_cert, timeout_s=5))


async def token_for(tsa: LocalTsa, pki: Pki, target: Target) -> bytes:
    c = client(tsa, pki)
    try:
        done = await c.anchor(target)
    finally:
        await c.close()
    return base64.b64decode(done.record["token"])


async def test_token_over_the_checkpoint_body_verifies_offline(
    tsa: LocalTsa, pki: Pki, make_target: MakeTarget
) -> None:
    target = make_target(100)
    c = client(tsa, pki)
    done = await c.anchor(target)
    await c.close()
    assert done.target == target and set(done.record) == {"type", "tsa", "token"}
    assert done.record["tsa"] == tsa.url
    token = base64.b64decode(done.record["token"])
    tst = cms.ContentInfo.load(token)["content"]["encap_content_info"]["content"].parsed
    assert tst["message_imprint"]["hashed_message"].native == hashlib.sha256(target.body.encode()).digest()
    assert target.body.endswith("\n") and "\n\n" not in target.body
    cas = load_certificates(pki.ca_cert.read_bytes())
    info = verify_token(token, body=target.body, trusted_cas=cas)
    assert info.tsa == "CN=notar test TSA"
    verify = rfc3161_anchor_verifier(cas)
    verdict = verify(Anchor.from_obj(done.record), AnchorTarget.of(target.checkpoint, target.body))
    assert verdict.status is Status.OK and "by CN=notar test TSA" in verdict.detail
    other = make_target(101)
    verdict = verify(Anchor.from_obj(done.record), AnchorTarget.of(other.checkpoint, other.body))
    assert verdict.status is Status.FAILED and "imprint" in verdict.detail


async def test_altered_or_untrusted_tokens_fail(tsa: LocalTsa, pki: Pki, make_target: MakeTarget) -> None:
    target = make_target(5)
    token = await token_for(tsa, pki, target)
    cas = load_certificates(pki.ca_cert.read_bytes())
    sig = token.rfind(cms.ContentInfo.load(token)["content"]["signer_infos"][0]["signature"].contents)
    flipped = bytearray(token)
    flipped[sig + 10] ^= 1
    with pytest.raises(ValueError, match="signature does not verify"):
        verify_token(bytes(flipped), body=target.body, trusted_cas=cas)
    with pytest.raises(ValueError, match="not trusted"):
        verify_token(token, body=target.body, trusted_cas=load_certificates(
            (pki.dir / "rogue-ca.crt").read_bytes()))
    with pytest.raises(ValueError, match="malformed time-stamp token"):
        verify_token(token[:-7], body=target.body, trusted_cas=cas)
    with pytest.raises(ValueError, match="no trusted"):
        verify_token(token, body=target.body, trusted_cas=[])


def _cert(pki: Pki, token: bytes, extension: x509.ExtensionType, critical: bool,
          starts: timedelta = timedelta(hours=-1)) -> bytes:
    """A certificate for the TSA's own key with only ``extension``, signed by the test CA and valid
    from ``starts`` after the token's genTime (by default an hour before it: a certificate issued
    now could start after the token's time, both being to the second, and a token is checked at its
    genTime)."""
    tst = cms.ContentInfo.load(token)["content"]["encap_content_info"]["content"].parsed
    gen_time: datetime = tst["gen_time"].native
    ca_key = serialization.load_pem_private_key((pki.dir / "ca.key").read_bytes(), None)
    tsa_key = serialization.load_pem_private_key(pki.tsa_key.read_bytes(), None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey) and isinstance(tsa_key, ec.EllipticCurvePrivateKey)
    ca = x509.load_pem_x509_certificate(pki.ca_cert.read_bytes())
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "notar test TSA")]))
        .issuer_name(ca.subject)
        .public_key(tsa_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(gen_time + starts)
        .not_valid_after(gen_time + timedelta(days=30))
    )
    cert = builder.add_extension(extension, critical=critical).sign(ca_key, hashes.SHA256())
    return cert.public_bytes(serialization.Encoding.DER)


def _reissue(token: bytes, cert_der: bytes, key_file: Path) -> bytes:
    """The token re-signed with the same key under another certificate (ESS attribute updated):
    what a TSA with a badly issued certificate would send, which openssl refuses to make."""
    ci = cms.ContentInfo.load(token)
    sd = ci["content"]
    si = sd["signer_infos"][0]
    cert = cms.Certificate.load(cert_der)
    for attr in si["signed_attrs"]:
        if attr["type"].native == "signing_certificate_v2":
            attr["values"][0]["certs"][0]["cert_hash"] = cms.OctetString(hashlib.sha256(cert_der).digest())
    si["sid"] = cms.SignerIdentifier({"issuer_and_serial_number": {
        "issuer": cert.issuer, "serial_number": cert.serial_number}})
    key = serialization.load_pem_private_key(key_file.read_bytes(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    signed = b"\x31" + si["signed_attrs"].dump(force=True)[1:]
    si["signature"] = cms.OctetString(key.sign(signed, ec.ECDSA(hashes.SHA256())))
    sd["certificates"] = [cms.CertificateChoices({"certificate": cert})]
    return bytes(ci.dump(force=True))


_TIME_STAMPING = x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING])
_STAMP_AND_SIGN = x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING, ExtendedKeyUsageOID.CODE_SIGNING])
_SIGNING_ONLY = x509.KeyUsage(
    digital_signature=True, content_commitment=False, key_encipherment=False, data_encipherment=False,
    key_agreement=False, key_cert_sign=False, crl_sign=False, encipher_only=False, decipher_only=False,
)


@pytest.mark.parametrize(
    ("extension", "critical", "why"),
    [
        (_TIME_STAMPING, True, None),
        (_TIME_STAMPING, False, r"not trusted for time-stamping: .*2\.5\.29\.37: .* incorrect criticality"),
        (_STAMP_AND_SIGN, True, r"not trusted for time-stamping: .*must be timeStamping alone"),
        (_SIGNING_ONLY, True, r"not trusted for time-stamping: .*2\.5\.29\.37: .*missing required extension"),
    ],
    ids=["critical-timeStamping", "non-critical", "timeStamping-and-codeSigning", "no-eku"],
)
async def test_the_tsa_certificate_needs_a_critical_timestamping_eku_alone(
    tsa: LocalTsa, pki: Pki, make_target: MakeTarget, extension: x509.ExtensionType, critical: bool,
    why: str | None,
) -> None:
    target = make_target(6)
    token = await token_for(tsa, pki, target)
    token = _reissue(token, _cert(pki, token, extension, critical), pki.tsa_key)
    cas = load_certificates(pki.ca_cert.read_bytes())
    if why is None:  # the re-issuing itself is sound: only the extension decides
        verify_token(token, body=target.body, trusted_cas=cas)
    else:
        with pytest.raises(ValueError, match=why):
            verify_token(token, body=target.body, trusted_cas=cas)


async def test_a_certificate_that_starts_after_the_token_time_is_not_trusted(
    tsa: LocalTsa, pki: Pki, make_target: MakeTarget
) -> None:
    target = make_target(6)
    token = await token_for(tsa, pki, target)
    cas = load_certificates(pki.ca_cert.read_bytes())
    late = _reissue(token, _cert(pki, token, _TIME_STAMPING, True, starts=timedelta(seconds=1)), pki.tsa_key)
    with pytest.raises(ValueError, match=r"not trusted for time-stamping: .*not valid at validation time"):
        verify_token(late, body=target.body, trusted_cas=cas)
    on_time = _reissue(token, _cert(pki, token, _TIME_STAMPING, True, starts=timedelta(0)), pki.tsa_key)
    assert verify_token(on_time, body=target.body, trusted_cas=cas).tsa == "CN=notar test TSA"


@pytest.mark.parametrize(
    ("mode", "why"),
    [
        ("garbage", "gave no usable token"),
        ("random", "gave no usable token"),
        ("error", "answered HTTP 500"),
        ("refuse", "refused: rejection"),
        ("untrusted", "does not verify against TSA_CA_FILE"),
        ("wrong-nonce", "answered with another nonce"),
        ("wrong-imprint", "stamped another message imprint"),
    ],
)
async def test_a_faulty_tsa_gives_a_clear_error_and_no_record(
    tsa: LocalTsa, pki: Pki, make_target: MakeTarget, mode: str, why: str
) -> None:
    tsa.mode = mode
    c = client(tsa, pki)
    try:
        with pytest.raises(AnchorError, match=why):
            await c.anchor(make_target(7))
        tsa.mode = "ok"
        assert (await c.anchor(make_target(7))).record["type"] == "rfc3161"
    finally:
        await c.close()


async def test_a_tsa_slower_than_the_timeout_is_a_clear_error(
    tsa: LocalTsa, pki: Pki, make_target: MakeTarget
) -> None:
    tsa.mode, tsa.slow_s = "slow", 3.0
    c = TsaClient.from_config(Rfc3161Config(url=tsa.url, ca_file=pki.ca_cert, timeout_s=0.5))
    try:
        with pytest.raises(AnchorError, match="unreachable: TimeoutError"):
            await c.anchor(make_target(9))
        tsa.mode = "ok"
        assert (await c.anchor(make_target(9))).record["type"] == "rfc3161"
    finally:
        await c.close()


async def test_a_tsa_that_is_down_then_back(tsa: LocalTsa, pki: Pki, make_target: MakeTarget) -> None:
    c = client(tsa, pki)
    try:
        await tsa.stop()
        with pytest.raises(AnchorError, match="unreachable"):
            await c.anchor(make_target(8))
        await tsa.start()
        assert (await c.anchor(make_target(8))).record["type"] == "rfc3161"
    finally:
        await c.close()


def test_the_ca_file_is_checked_at_start(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="TSA_CA_FILE: cannot read"):
        TsaClient.from_config(Rfc3161Config(url="http://127.0.0.1:1/", ca_file=tmp_path / "missing.pem"))
    (tmp_path / "empty.pem").write_text("nothing\n")
    with pytest.raises(ConfigError, match="no PEM certificate"):
        TsaClient.from_config(Rfc3161Config(url="http://127.0.0.1:1/", ca_file=tmp_path / "empty.pem"))
