"""SCITT signed statements (RFC 9943; draft-ietf-scitt-scrapi): the strict parser, the log entry,
issuer signatures and keys, and X.509 chains for ``x5chain``.

A signed statement is a tagged COSE_Sign1 ``18([protected, unprotected, payload, signature])``.
notar logs it as the 33-byte entry (SPEC §1, §12)::

    entry = 0x03 || SHA-256( deterministic CBOR of 18([protected, {}, payload, signature]) )

with ``protected`` the byte string exactly as received (it is what the issuer signed) and the
outer array in RFC 8949 §4.2.1 encoding: the unprotected header (where receipts and ``x5chain``
travel) and any non-canonical outer encoding leave the entry unchanged, so one statement has one
entry. The payload must be attached (it is what the signature covers); a hash envelope (RFC 9995,
header 258) is a statement whose payload is a hash, and is checked as RFC 9995 says.

Every refusal is a ``StatementError`` (a ValueError) whose ``title`` is a short, stable reason —
SCRAPI's titles where it has one — and whose text says exactly what is wrong.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from merkle.cbor import Tag, encode
from merkle.cose import (
    ALG_EDDSA,
    ALG_ES256,
    ALG_ES384,
    CWT_ISS,
    CWT_SUB,
    HDR_ALG,
    HDR_CRIT,
    HDR_CTY,
    HDR_CWT_CLAIMS,
    HDR_KID,
    HDR_X5CHAIN,
    HDR_X5T,
    TAG_SIGN1,
    decode_sign1,
    sig_structure,
)
from merkle.digests import ENTRY_SCITT

ENTRY_TYPE = ENTRY_SCITT
ENTRY_SIZE = 33
HDR_PAYLOAD_HASH_ALG, HDR_PREIMAGE_CONTENT_TYPE, HDR_PAYLOAD_LOCATION = 258, 259, 260
MAX_CLAIM_LENGTH = 8192  # RFC 9943: `iss` is 1 to 8192 characters; `sub` is held to the same
ALGORITHMS = {ALG_ES256: "ES256", ALG_ES384: "ES384", ALG_EDDSA: "EdDSA"}
HASH_ALGORITHMS = {-16: hashes.SHA256(), -43: hashes.SHA384(), -44: hashes.SHA512()}
UNDERSTOOD = frozenset(
    {HDR_ALG, HDR_CRIT, HDR_CTY, HDR_KID, HDR_CWT_CLAIMS, HDR_X5CHAIN, HDR_X5T}
    | {HDR_PAYLOAD_HASH_ALG, HDR_PREIMAGE_CONTENT_TYPE, HDR_PAYLOAD_LOCATION}
)
"""Protected header labels notar processes: the only ones a statement may mark critical."""

MALFORMED = "Malformed request"
NOT_SIGN1 = "Not a COSE_Sign1"
BAD_ALGORITHM = "Bad Signature Algorithm"
PAYLOAD_MISSING = "Payload Missing"
MISSING_CLAIMS = "Missing Claims"
REJECTED = "Rejected"
UNKNOWN_KEY = "Unknown Issuer Key"
BAD_SIGNATURE = "Bad Signature"
TOO_LARGE = "Statement Too Large"

IssuerKey = ec.EllipticCurvePublicKey | Ed25519PublicKey


class StatementError(ValueError):
    """A statement refused: ``title`` is the short reason (a problem's title), the text its detail."""

    def __init__(self, title: str, detail: str) -> None:
        super().__init__(detail)
        self.title = title
        self.detail = detail


@dataclass(frozen=True)
class Statement:
    """A parsed signed statement. ``protected_raw`` is the protected header as received."""

    protected_raw: bytes
    protected: dict[object, object] = field(repr=False)
    unprotected: dict[object, object] = field(repr=False)
    payload: bytes = field(repr=False)
    signature: bytes = field(repr=False)
    alg: int
    issuer: str
    subject: str
    kid: bytes | None
    x5chain: tuple[bytes, ...]
    x5t: tuple[int, bytes] | None

    @property
    def entry(self) -> bytes:
        """The log entry (module doc)."""
        return statement_entry(self.protected_raw, self.payload, self.signature)

    @property
    def to_be_signed(self) -> bytes:
        return sig_structure(self.protected_raw, self.payload)


def statement_entry(protected_raw: bytes, payload: bytes, signature: bytes) -> bytes:
    """``0x03 || SHA-256(18([protected, {}, payload, signature]))``, deterministically encoded."""
    envelope = encode(Tag(TAG_SIGN1, [protected_raw, {}, payload, signature]))
    return bytes((ENTRY_TYPE,)) + hashlib.sha256(envelope).digest()


def parse_statement(data: bytes, *, max_size: int = 1 << 20) -> Statement:
    """The statement in ``data``; StatementError naming what is wrong (module doc)."""
    if not isinstance(data, bytes):
        raise StatementError(MALFORMED, "a signed statement is bytes")
    if len(data) > max_size:
        raise StatementError(
            TOO_LARGE, f"the statement is {len(data)} bytes; at most {max_size} are accepted"
        )
    if data[:1] != b"\xd2":
        raise StatementError(NOT_SIGN1, "a signed statement is a tagged COSE_Sign1: CBOR tag 18 (0xd2)")
    try:
        protected_raw, protected, unprotected, payload, signature = decode_sign1(data, "the statement")
    except ValueError as e:
        raise StatementError(MALFORMED, str(e)) from None
    if payload is None or not isinstance(payload, bytes):
        raise StatementError(
            PAYLOAD_MISSING, "the payload is detached (nil): notar needs it attached to check the signature"
        )
    alg = protected.get(HDR_ALG)
    if isinstance(alg, bool) or not isinstance(alg, int) or alg not in ALGORITHMS:
        raise StatementError(
            BAD_ALGORITHM,
            f"the protected header's alg (1) is {alg!r:.40}; accepted: ES256 (-7), ES384 (-35), EdDSA (-8)",
        )
    if HDR_ALG in unprotected:
        raise StatementError(REJECTED, "alg (1) must be only in the protected header")
    issuer, subject = _claims(protected)
    _check_crit(protected)
    kid = protected.get(HDR_KID)
    if kid is not None and (not isinstance(kid, bytes) or not kid):
        raise StatementError(MALFORMED, "the protected kid (4) must be a non-empty byte string")
    x5chain = _x5chain(protected.get(HDR_X5CHAIN, unprotected.get(HDR_X5CHAIN)))
    x5t = _x5t(protected.get(HDR_X5T))
    if HDR_X5T in unprotected:
        raise StatementError(REJECTED, "x5t (34) must be in the protected header")
    if x5chain and HDR_X5CHAIN not in protected and x5t is None:
        raise StatementError(
            REJECTED, "an x5chain (33) in the unprotected header needs an x5t (34) in the protected header"
        )
    if kid is None and not x5chain:
        raise StatementError(REJECTED, "the statement names no key: kid (4), or x5chain (33) with x5t (34)")
    _check_hash_envelope(protected, unprotected, payload)
    return Statement(
        protected_raw, protected, unprotected, payload, signature, alg, issuer, subject, kid, x5chain, x5t
    )


def _claims(protected: dict[object, object]) -> tuple[str, str]:
    claims = protected.get(HDR_CWT_CLAIMS)
    if not isinstance(claims, dict):
        raise StatementError(
            MISSING_CLAIMS, "the protected header has no CWT claims (15) with iss (1) and sub (2)"
        )
    values = []
    for label, name in ((CWT_ISS, "iss"), (CWT_SUB, "sub")):
        value = claims.get(label)
        if not isinstance(value, str) or not value:
            raise StatementError(MISSING_CLAIMS, f"the CWT claims (15) have no {name} ({label}) text")
        if len(value) > MAX_CLAIM_LENGTH:
            raise StatementError(MALFORMED, f"the {name} claim is longer than {MAX_CLAIM_LENGTH} characters")
        values.append(value)
    return values[0], values[1]


def _check_crit(protected: dict[object, object]) -> None:
    if HDR_CRIT not in protected:
        return
    crit = protected[HDR_CRIT]
    if not isinstance(crit, list) or not crit:
        raise StatementError(MALFORMED, "crit (2) must be a non-empty array of labels")
    for label in crit:
        if isinstance(label, bool) or not isinstance(label, int | str):
            raise StatementError(MALFORMED, "crit (2) must list header labels: integers or text")
        if label not in protected:
            raise StatementError(MALFORMED, f"crit (2) names {label!r:.40}, which the protected header lacks")
        if label not in UNDERSTOOD:
            raise StatementError(
                REJECTED, f"crit (2) marks header {label!r:.40} critical, which notar does not process"
            )


def _x5chain(value: object) -> tuple[bytes, ...]:
    if value is None:
        return ()
    certs = [value] if isinstance(value, bytes) else value
    if not isinstance(certs, list) or not certs or not all(isinstance(c, bytes) and c for c in certs):
        raise StatementError(
            MALFORMED, "x5chain (33) must be a certificate or an array of certificates (DER)"
        )
    return tuple(certs)


def _x5t(value: object) -> tuple[int, bytes] | None:
    if value is None:
        return None
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not isinstance(value[0], int)
        or isinstance(value[0], bool)
        or not isinstance(value[1], bytes)
    ):
        raise StatementError(MALFORMED, "x5t (34) must be [hash algorithm, hash] (RFC 9360 COSE_CertHash)")
    if value[0] not in HASH_ALGORITHMS:
        raise StatementError(
            REJECTED, f"x5t's hash algorithm {value[0]} is not SHA-256 (-16), SHA-384 (-43) or SHA-512 (-44)"
        )
    return value[0], value[1]


def _check_hash_envelope(
    protected: dict[object, object], unprotected: dict[object, object], payload: bytes
) -> None:
    """RFC 9995: 258 protected only, with a payload of that hash's size; 259 and 260 protected
    only; no content type (3) anywhere."""
    for label in (HDR_PAYLOAD_HASH_ALG, HDR_PREIMAGE_CONTENT_TYPE, HDR_PAYLOAD_LOCATION):
        if label in unprotected:
            raise StatementError(REJECTED, f"hash envelope header {label} must be in the protected header")
    if HDR_PAYLOAD_HASH_ALG not in protected:
        return
    if HDR_CTY in protected or HDR_CTY in unprotected:
        raise StatementError(REJECTED, "a hash envelope (258) has no content type (3): use 259")
    alg = protected[HDR_PAYLOAD_HASH_ALG]
    digest = HASH_ALGORITHMS.get(alg) if isinstance(alg, int) and not isinstance(alg, bool) else None
    if digest is None:
        raise StatementError(REJECTED, f"payload hash algorithm (258) {alg!r:.40} is not -16, -43 or -44")
    if len(payload) != digest.digest_size:
        raise StatementError(
            MALFORMED,
            f"a {digest.name} hash envelope's payload is {digest.digest_size} bytes, not {len(payload)}",
        )


# -- issuer keys ------------------------------------------------------------------------------------
def load_issuer_key(pem: bytes) -> IssuerKey:
    """An issuer's public key from PEM (SubjectPublicKeyInfo): P-256, P-384 or Ed25519."""
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError) as e:
        raise ValueError(f"not a PEM public key: {e}") from None
    key_alg(key)  # refuses other key types
    return key  # type: ignore[return-value]  # key_alg checked the type


def key_alg(key: object) -> int:
    """The COSE algorithm an issuer key signs with; ValueError for another kind of key."""
    if isinstance(key, Ed25519PublicKey):
        return ALG_EDDSA
    if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
        return ALG_ES256
    if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP384R1):
        return ALG_ES384
    raise ValueError("issuer keys are P-256 (ES256), P-384 (ES384) or Ed25519 (EdDSA)")


def key_id(key: IssuerKey) -> bytes:
    """An issuer key's kid: SHA-256 of its DER SubjectPublicKeyInfo."""
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).digest()


def key_pem(key: IssuerKey) -> str:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def verify_signature(statement: Statement, key: IssuerKey) -> None:
    """StatementError unless ``key`` is of the statement's algorithm and its signature verifies."""
    if key_alg(key) != statement.alg:
        raise StatementError(
            BAD_ALGORITHM,
            f"the statement is signed with {ALGORITHMS[statement.alg]}, its key is for another algorithm",
        )
    message, signature = statement.to_be_signed, statement.signature
    try:
        if isinstance(key, Ed25519PublicKey):
            key.verify(signature, message)
        else:
            width = (key.curve.key_size + 7) // 8
            if len(signature) != 2 * width:
                raise InvalidSignature
            r, s = int.from_bytes(signature[:width], "big"), int.from_bytes(signature[width:], "big")
            digest = hashes.SHA256() if statement.alg == ALG_ES256 else hashes.SHA384()
            key.verify(encode_dss_signature(r, s), message, ec.ECDSA(digest))
    except InvalidSignature:
        raise StatementError(
            BAD_SIGNATURE, "the statement's signature does not verify under the issuer's key"
        ) from None


# -- x5chain ----------------------------------------------------------------------------------------
def chain_leaf(statement: Statement) -> tuple[x509.Certificate, list[x509.Certificate]]:
    """The leaf certificate of the statement's x5chain and the rest, with the x5t checked against
    the leaf when there is one. StatementError when the chain does not parse or x5t differs."""
    try:
        certs = [x509.load_der_x509_certificate(c) for c in statement.x5chain]
    except ValueError as e:
        raise StatementError(MALFORMED, f"x5chain holds a certificate that does not parse: {e}") from None
    if statement.x5t is not None:
        alg, expected = statement.x5t
        digest = hashes.Hash(HASH_ALGORITHMS[alg])
        digest.update(statement.x5chain[0])
        if digest.finalize() != expected:
            raise StatementError(REJECTED, "x5t (34) is not the hash of x5chain's first (leaf) certificate")
    return certs[0], certs[1:]


def verify_chain(
    leaf: x509.Certificate, intermediates: list[x509.Certificate], anchors: list[x509.Certificate]
) -> None:
    """StatementError unless a certification path leads from ``leaf`` through ``intermediates`` to
    one of ``anchors`` (RFC 5280 as cryptography's verifier implements it, for any key usage)."""
    from cryptography.x509 import verification

    store = verification.Store(anchors)
    policy = verification.ExtensionPolicy.permit_all()
    builder = verification.PolicyBuilder().store(store)
    verifier = builder.extension_policies(
        ca_policy=verification.ExtensionPolicy.webpki_defaults_ca(), ee_policy=policy
    )
    try:
        verifier.build_client_verifier().verify(leaf, intermediates)
    except verification.VerificationError as e:
        raise StatementError(REJECTED, f"x5chain does not lead to the issuer's trust anchor: {e}") from None
