"""The `rfc3161` anchor: RFC 3161 time-stamp requests and offline token verification (SPEC §4).

The message imprint is SHA-256 of the checkpoint body: the note text up to, not including, the
blank line (so with its final newline). For an aggregate of checkpoints (SPEC §10) it is SHA-256 of
``merkle.aggregate.aggregate_body(K, root)``, notar's choice where SPEC §4 says nothing.

A token is accepted only when all of these hold: it is CMS SignedData with one signer over a
TSTInfo; the TSTInfo's imprint is SHA-256 of that body; the
signed attributes carry the TSTInfo's content type and digest and an ESS signing-certificate (v1
or v2) naming the signer's certificate; the signature verifies under that certificate; the
certificate's only extended key usage is a critical id-kp-timeStamping (RFC 3161 §2.3); and it
chains to a trusted CA at the token's time (so a token stays valid after its TSA certificate
expires, as long-term validation of time-stamps assumes), through CAs of the Web PKI profile whose
extended key usage, when they have one, allows time-stamping.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from asn1crypto import algos, cms, core, tsp
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.x509 import verification
from cryptography.x509.oid import ExtendedKeyUsageOID

from merkle.aggregate import AnchorTarget
from merkle.checks import AnchorVerdict, AnchorVerifier, Status
from merkle.note import b64decode_canonical
from merkle.receipt import Anchor

_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}


class TokenError(ValueError):
    """A time-stamp response or token that is malformed or does not verify; says which part."""


def imprint(body: str) -> bytes:
    """SHA-256 of the checkpoint body, the message imprint of the request."""
    return hashlib.sha256(body.encode("utf-8")).digest()


def build_request(body: str, nonce: int) -> bytes:
    """A DER TimeStampReq for ``body`` with ``nonce``, asking for the TSA's certificate."""
    der: bytes = tsp.TimeStampReq(
        {
            "version": "v1",
            "message_imprint": {
                "hash_algorithm": {"algorithm": "sha256"},
                "hashed_message": imprint(body),
            },
            "nonce": nonce,
            "cert_req": True,
        }
    ).dump()
    return der


def token_from_response(response: bytes, *, nonce: int, body: str) -> bytes:
    """The DER token of a granted TimeStampResp answering our request; ValueError otherwise."""
    try:
        # asn1crypto's TimeStampResp makes the token mandatory; a refusal has none, so by hand:
        outer = core.Sequence.load(response, strict=True)
        info = tsp.PKIStatusInfo.load(outer[0].dump())
        status = info["status"].native
        if status not in ("granted", "granted_with_mods"):
            text = " ".join(info["status_string"].native or [])
            raise TokenError(f"the TSA refused: {status} {text}".strip())
        if len(outer) != 2:
            raise TokenError("the TSA granted but sent no token")
        token = cms.ContentInfo.load(outer[1].dump())
        tst = _tst_info(token)
        if tst["nonce"].native != nonce:
            raise TokenError("the TSA answered with another nonce")
        if tst["message_imprint"]["hashed_message"].native != imprint(body):
            raise TokenError("the TSA stamped another message imprint")
        return bytes(token.dump())
    except TokenError:
        raise
    except Exception as e:  # asn1crypto raises many kinds on garbage
        raise TokenError(f"not a time-stamp response: {e}") from e


@dataclass(frozen=True)
class TokenInfo:
    gen_time: datetime
    tsa: str
    serial: int
    policy: str


def _tst_info(token: cms.ContentInfo) -> tsp.TSTInfo:
    if token["content_type"].native != "signed_data":
        raise TokenError("the token is not CMS SignedData")
    encap = token["content"]["encap_content_info"]
    if encap["content_type"].native != "tst_info":
        raise TokenError("the token does not hold a TSTInfo")
    parsed = encap["content"].parsed
    if not isinstance(parsed, tsp.TSTInfo):
        raise TokenError("the token's TSTInfo is malformed")
    return parsed


def _hash(name: str, data: bytes) -> bytes:
    if name not in _HASHES:
        raise TokenError(f"digest algorithm {name} is not accepted")
    h = hashes.Hash(_HASHES[name]())
    h.update(data)
    return h.finalize()


def _signer_cert(sd: cms.SignedData, si: cms.SignerInfo) -> cms.Certificate:
    sid = si["sid"]
    for choice in sd["certificates"] or []:
        if choice.name != "certificate":
            continue
        cert = choice.chosen
        if sid.name == "issuer_and_serial_number":
            ias = sid.chosen
            if cert.issuer == ias["issuer"] and cert.serial_number == ias["serial_number"].native:
                return cert
        elif cert.key_identifier == sid.chosen.native:
            return cert
    raise TokenError("the token does not include its signer's certificate")


def _check_signed_attrs(si: cms.SignerInfo, tst_der: bytes, cert: cms.Certificate) -> None:
    attrs = {a["type"].native: a["values"] for a in si["signed_attrs"]}
    if "content_type" not in attrs or attrs["content_type"][0].native != "tst_info":
        raise TokenError("the signed content type is not TSTInfo")
    digest_alg = si["digest_algorithm"]["algorithm"].native
    if "message_digest" not in attrs or attrs["message_digest"][0].native != _hash(digest_alg, tst_der):
        raise TokenError("the signed message digest does not match the TSTInfo")
    cert_der = cert.dump()
    if "signing_certificate_v2" in attrs:
        ess = attrs["signing_certificate_v2"][0]["certs"][0]
        alg = ess["hash_algorithm"]["algorithm"].native
        matches = ess["cert_hash"].native == _hash(alg, cert_der)
    elif "signing_certificate" in attrs:
        ess = attrs["signing_certificate"][0]["certs"][0]
        matches = ess["cert_hash"].native == hashlib.sha1(cert_der).digest()  # noqa: S324 - ESS v1 is SHA-1
    else:
        raise TokenError("no ESS signing-certificate attribute")
    if not matches:
        raise TokenError("the ESS signing-certificate names another certificate")
    serial = ess["issuer_serial"]
    if serial.native is not None and serial["serial_number"].native != cert.serial_number:
        raise TokenError("the ESS signing-certificate names another serial number")


def _check_signature(si: cms.SignerInfo, key: Any) -> None:
    signed = b"\x31" + si["signed_attrs"].dump()[1:]  # signed over the SET OF, not the [0] tag
    sig = si["signature"].native
    algo: algos.SignedDigestAlgorithm = si["signature_algorithm"]
    digest = _HASHES.get(si["digest_algorithm"]["algorithm"].native)
    try:
        if isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(sig, signed)
        elif digest is None:
            raise TokenError("the signer's digest algorithm is not accepted")
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(sig, signed, ec.ECDSA(digest()))
        elif isinstance(key, rsa.RSAPublicKey) and algo.signature_algo == "rsassa_pss":
            pad = padding.PSS(padding.MGF1(digest()), padding.PSS.AUTO)
            key.verify(sig, signed, pad, digest())
        elif isinstance(key, rsa.RSAPublicKey):
            key.verify(sig, signed, padding.PKCS1v15(), digest())
        else:
            raise TokenError("the signer's key type is not supported")
    except InvalidSignature:
        raise TokenError("the token's signature does not verify") from None


def _only_timestamping(policy: Any, cert: x509.Certificate, eku: x509.ExtendedKeyUsage | None) -> None:
    if eku is None or list(eku) != [ExtendedKeyUsageOID.TIME_STAMPING]:
        raise TokenError("the extended key usage must be timeStamping alone")


def _ca_may_stamp(policy: Any, cert: x509.Certificate, eku: x509.ExtendedKeyUsage | None) -> None:
    allowed = {ExtendedKeyUsageOID.TIME_STAMPING, ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE}
    if eku is not None and not allowed & set(eku):
        raise TokenError(f"the CA {cert.subject.rfc4514_string()} may not certify time-stamping")


def _check_chain(cert: x509.Certificate, others: list[x509.Certificate], cas: Sequence[x509.Certificate],
                 at: datetime) -> None:
    ee = verification.ExtensionPolicy.permit_all().require_present(
        x509.ExtendedKeyUsage, verification.Criticality.CRITICAL, _only_timestamping
    )
    # A CA whose extended key usage is given must allow time-stamping (TSA hierarchies restrict
    # their intermediates to it); the Web PKI default would ask for the client verifier's clientAuth.
    ca = verification.ExtensionPolicy.webpki_defaults_ca().may_be_present(
        x509.ExtendedKeyUsage, verification.Criticality.AGNOSTIC, _ca_may_stamp
    )
    verifier = (
        verification.PolicyBuilder()
        .store(verification.Store(list(cas)))
        .time(at)
        .extension_policies(ca_policy=ca, ee_policy=ee)
        .build_client_verifier()
    )
    try:
        verifier.verify(cert, others)
    except verification.VerificationError as e:
        raise TokenError(f"the TSA certificate is not trusted for time-stamping: {e}") from e


def verify_token(token: bytes, *, body: str, trusted_cas: Sequence[x509.Certificate]) -> TokenInfo:
    """Check a DER time-stamp token over ``body`` offline (see the module doc); ValueError says
    which part fails."""
    if not trusted_cas:
        raise TokenError("no trusted TSA CA certificate given")
    try:
        ci = cms.ContentInfo.load(token, strict=True)
        tst = _tst_info(ci)
        sd: cms.SignedData = ci["content"]
        if len(sd["signer_infos"]) != 1:
            raise TokenError("a time-stamp token has exactly one signer")
        si = sd["signer_infos"][0]
        tst_der = bytes(sd["encap_content_info"]["content"].contents)
        mi = tst["message_imprint"]
        algorithm, hashed = mi["hash_algorithm"]["algorithm"].native, mi["hashed_message"].native
        if algorithm != "sha256" or hashed != imprint(body):
            raise TokenError("the token's message imprint is not SHA-256 of this checkpoint")
        cert = _signer_cert(sd, si)
        if not isinstance(si["signed_attrs"], cms.CMSAttributes) or not len(si["signed_attrs"]):
            raise TokenError("the token has no signed attributes")
        _check_signed_attrs(si, tst_der, cert)
        signer = x509.load_der_x509_certificate(cert.dump())
        _check_signature(si, signer.public_key())
        others = [
            x509.load_der_x509_certificate(c.chosen.dump())
            for c in sd["certificates"] or []
            if c.name == "certificate" and c.chosen.dump() != cert.dump()
        ]
        gen_time: datetime = tst["gen_time"].native
        _check_chain(signer, others, trusted_cas, gen_time)
    except TokenError:
        raise
    except Exception as e:  # asn1crypto and cryptography raise many kinds on malformed input
        raise TokenError(f"malformed time-stamp token: {e}") from e
    return TokenInfo(gen_time, signer.subject.rfc4514_string(), int(tst["serial_number"].native),
                     str(tst["policy"].native))


def read_token(token: bytes) -> TokenInfo:
    """What a DER token claims, checking nothing (for a report of a token no CA was given for):
    its genTime, its signer's name, serial and policy; TokenError when it does not read."""
    try:
        ci = cms.ContentInfo.load(token, strict=True)
        tst = _tst_info(ci)
        sd: cms.SignedData = ci["content"]
        try:
            cert = _signer_cert(sd, sd["signer_infos"][0])
            tsa = x509.load_der_x509_certificate(cert.dump()).subject.rfc4514_string()
        except Exception:  # no signer, or its certificate is missing or unreadable: the claim has no name
            tsa = "an unnamed TSA"
        serial, policy = int(tst["serial_number"].native), str(tst["policy"].native)
        return TokenInfo(tst["gen_time"].native, tsa, serial, policy)
    except TokenError:
        raise
    except Exception as e:  # asn1crypto raises many kinds on malformed input
        raise TokenError(f"malformed time-stamp token: {e}") from e


def load_certificates(pem: bytes) -> list[x509.Certificate]:
    """Every certificate of a PEM file; ValueError when there is none."""
    certs = x509.load_pem_x509_certificates(pem)
    if not certs:
        raise TokenError("no PEM certificate found")
    return certs


def rfc3161_anchor_verifier(trusted_cas: Iterable[x509.Certificate]) -> AnchorVerifier:
    """An AnchorVerifier for records ``{type: rfc3161, tsa, token}`` (token: base64 DER) over the
    target's stamped text: the checkpoint body, or for an aggregated record the aggregate's text
    (``merkle.aggregate.aggregate_body``). Its time is the token's genTime."""
    cas = list(trusted_cas)

    def verify(anchor: Anchor, target: AnchorTarget) -> AnchorVerdict:
        token = b64decode_canonical(anchor.fields().get("token"))  # type: ignore[arg-type]
        try:
            info = verify_token(token, body=target.stamped, trusted_cas=cas)
        except ValueError as e:
            return AnchorVerdict(Status.FAILED, str(e))
        when = info.gen_time.strftime("%Y-%m-%dT%H:%M:%SZ")
        of = f" for an aggregate of {target.size} checkpoints" if target.aggregate is not None else ""
        return AnchorVerdict(
            Status.OK, f"time-stamped{of} at {when} by {info.tsa} (serial {info.serial})",
            time=int(info.gen_time.timestamp()),
        )

    return verify
