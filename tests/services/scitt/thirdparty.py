"""SCITT statements built, and COSE receipts checked, with third-party code only (pycose, cwt,
scitt-cose, cbor2, cryptography): never notar's merkle.cbor / merkle.cose / merkle.scitt, so that
the tests check notar against other implementations of the same RFCs."""

from __future__ import annotations

import datetime
import hashlib
from dataclasses import dataclass
from typing import Any

import cbor2
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import NameOID
from cwt import COSE, COSEKey
from pycose.keys import EC2Key, OKPKey
from pycose.messages import Sign1Message
from scitt_cose import verify_receipt as scitt_cose_verify_receipt

ALGS = {"ES256": -7, "ES384": -35, "EdDSA": -8}
CURVES = {"ES256": ("P_256", ec.SECP256R1()), "ES384": ("P_384", ec.SECP384R1())}


@dataclass(frozen=True)
class IssuerKey:
    alg: str
    private: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey

    @classmethod
    def generate(cls, alg: str) -> IssuerKey:
        if alg == "EdDSA":
            return cls(alg, ed25519.Ed25519PrivateKey.generate())
        return cls(alg, ec.generate_private_key(CURVES[alg][1]))

    @property
    def pem(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    @property
    def kid(self) -> bytes:
        """SHA-256 of the DER SubjectPublicKeyInfo (SPEC §12)."""
        der = self.private.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return hashlib.sha256(der).digest()

    def pycose_key(self) -> EC2Key | OKPKey:
        if isinstance(self.private, ed25519.Ed25519PrivateKey):
            raw = self.private.private_bytes(
                serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
            )
            public = self.private.public_key().public_bytes(
                serialization.Encoding.Raw, serialization.PublicFormat.Raw
            )
            return OKPKey(crv="ED25519", d=raw, x=public)
        numbers = self.private.private_numbers()
        size = (self.private.curve.key_size + 7) // 8
        return EC2Key(
            crv=CURVES[self.alg][0],
            d=numbers.private_value.to_bytes(size, "big"),
            x=numbers.public_numbers.x.to_bytes(size, "big"),
            y=numbers.public_numbers.y.to_bytes(size, "big"),
        )


def statement(
    key: IssuerKey,
    payload: bytes | None,
    *,
    iss: str = "https://issuer.example",
    sub: str = "pkg:pypi/example@1.0",
    protected: dict[Any, Any] | None = None,
    unprotected: dict[Any, Any] | None = None,
    kid: bytes | bool | None = True,
) -> bytes:
    """A signed statement (pycose's COSE_Sign1): alg, kid (the key's unless told), CWT claims."""
    header: dict[Any, Any] = {1: ALGS[key.alg], 3: "application/json"}
    header[15] = {1: iss, 2: sub}
    if kid is True:
        header[4] = key.kid
    elif isinstance(kid, bytes):
        header[4] = kid
    header.update(protected or {})
    header = {k: v for k, v in header.items() if v is not None}
    message = Sign1Message(
        phdr=header, uhdr=unprotected or {}, payload=payload if payload is not None else b""
    )
    message.key = key.pycose_key()
    encoded: bytes = message.encode(tag=True)
    if payload is None:  # detached: the same signature, the payload slot nil
        parts = cbor2.loads(encoded).value
        encoded = cbor2.dumps(cbor2.CBORTag(18, [parts[0], parts[1], None, parts[3]]))
    return encoded


def statement_by_cwt(key: IssuerKey, payload: bytes, *, iss: str, sub: str) -> bytes:
    """A signed statement made by the `cwt` package's COSE_Sign1 (another implementation than
    pycose): alg, content type, the key's kid and the CWT claims in the protected header."""
    pem = key.private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    signer = COSEKey.from_pem(pem, alg=key.alg, kid=key.kid)
    header = {1: ALGS[key.alg], 3: "application/json", 4: key.kid, 15: {1: iss, 2: sub}}
    signed = COSE.new(alg_auto_inclusion=False, kid_auto_inclusion=False).encode_and_sign(
        payload, key=signer, protected=header
    )
    assert isinstance(signed, bytes)
    return signed


def entry_of(signed: bytes) -> bytes:
    """SPEC §12's entry, computed with cbor2: 0x03 || SHA-256(18([protected, {}, payload, signature]))."""
    protected, _, payload, signature = cbor2.loads(signed).value
    envelope = cbor2.dumps(cbor2.CBORTag(18, [protected, {}, payload, signature]), canonical=True)
    return b"\x03" + hashlib.sha256(envelope).digest()


def cose_key_thumbprint(key: dict[int, Any]) -> bytes:
    """RFC 9679 with cbor2's canonical encoding (OKP's labels 1, -1, -2 sort alike in both orders)."""
    return hashlib.sha256(cbor2.dumps({1: key[1], -1: key[-1], -2: key[-2]}, canonical=True)).digest()


def log_public_pem(key: dict[int, Any]) -> bytes:
    public = ed25519.Ed25519PublicKey.from_public_bytes(key[-2])
    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def check_receipt(receipt: bytes, signed: bytes, log_key: dict[int, Any]) -> dict[Any, Any]:
    """The receipt checked by scitt-cose (RFC9162_SHA256 proof and EdDSA over the root), and by
    pycose and cwt (COSE_Sign1 over the detached root); its protected header. AssertionError (or
    cwt's VerifyError) otherwise."""
    entry = entry_of(signed)
    result = scitt_cose_verify_receipt(
        receipt, leaf_entry_hex=entry.hex(), log_public_key_pem=log_public_pem(log_key)
    )
    assert result.ok, result.errors
    message = Sign1Message.decode(receipt)
    message.key = OKPKey(crv="ED25519", x=log_key[-2])
    assert message.verify_signature(detached_payload=bytes.fromhex(result.root))
    # cwt too (it raises when the signature does not verify)
    cwt_key = COSEKey.new({1: 1, 2: cose_key_thumbprint(log_key), -1: 6, -2: log_key[-2], 3: -8})
    COSE.new().decode(receipt, cwt_key, detached_payload=bytes.fromhex(result.root))
    protected = cbor2.loads(cbor2.loads(receipt).value[0])
    assert protected[4] == cose_key_thumbprint(log_key) == log_key[2]
    size, index, _ = cbor2.loads(cbor2.loads(receipt).value[1][396][-1][0])
    assert (size, index) == (result.tree_size, result.leaf_index) and protected["notar.tree_size"] == size
    return dict(protected)


def certificate_chain(key: IssuerKey) -> tuple[x509.Certificate, x509.Certificate]:
    """A CA and a leaf certificate for ``key``'s public key, signed by the CA (cryptography)."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "notar test issuer CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "issuer.example")]))
        .issuer_name(ca_name)
        .public_key(key.private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return ca, leaf
