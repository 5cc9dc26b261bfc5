"""RFC 3161 tokens of every shape the verifiers must judge alike, made in Python (cryptography for
keys and certificates, asn1crypto for CMS): EC P-256/P-384, RSA PKCS#1 v1.5 and PSS, Ed25519 TSAs,
chains through intermediates, and tokens or certificates that differ from a sound one in one way
(expired, no extended key usage, another signer, a wrong signed attribute...). `openssl ts` (tests/tsa.py)
makes the everyday ones; it refuses to sign most of these."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from asn1crypto import cms, core, tsp
from asn1crypto import x509 as ax
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

Key = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha256": hashes.SHA256, "sha384": hashes.SHA384, "sha512": hashes.SHA512, "sha1": hashes.SHA1,
}  # fmt: skip
_KEYS: dict[str, Key] = {}  # generated once per process: RSA keys take a while


def key(kind: str) -> Key:
    """A private key of `kind`: "p256", "p384", "rsa1024", "rsa2048", "rsa3072" or "ed25519",
    optionally with ":label" for another key of that type (one per kind and process: RSA keys take
    a while to make)."""
    if kind not in _KEYS:
        algorithm = kind.split(":")[0]
        if algorithm.startswith("rsa"):
            _KEYS[kind] = rsa.generate_private_key(65537, int(algorithm[3:]))
        elif algorithm == "ed25519":
            _KEYS[kind] = ed25519.Ed25519PrivateKey.generate()
        else:
            _KEYS[kind] = ec.generate_private_key(ec.SECP256R1() if algorithm == "p256" else ec.SECP384R1())
    return _KEYS[kind]


def _cert_hash(k: Key) -> hashes.HashAlgorithm | None:
    if isinstance(k, ed25519.Ed25519PrivateKey):
        return None
    if isinstance(k, ec.EllipticCurvePrivateKey) and k.curve.name == "secp384r1":
        return hashes.SHA384()
    return hashes.SHA256()


@dataclass(frozen=True)
class Cert:
    cert: x509.Certificate
    key: Key

    @property
    def der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)

    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)


@dataclass(frozen=True)
class Profile:
    """How a certificate is made; the defaults make a sound TSA certificate."""

    key: str = "p256"
    ca: bool = False
    eku: tuple[x509.ObjectIdentifier, ...] | None = (ExtendedKeyUsageOID.TIME_STAMPING,)
    eku_critical: bool = True
    key_cert_sign: bool = True  # CAs only
    bc_critical: bool = True
    path_length: int | None = None
    not_before: datetime = datetime(2020, 1, 1, tzinfo=UTC)
    not_after: datetime = datetime(2045, 1, 1, tzinfo=UTC)
    extra_critical: bool = False  # an extension no verifier knows, marked critical


def make_cert(name: str, profile: Profile, issuer: Cert | None = None, serial: int = 0) -> Cert:
    """A certificate named CN=`name` with `profile`, signed by `issuer` (self-signed without one)."""
    k = key(profile.key)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    issuer_name = issuer.cert.subject if issuer else subject
    signer = issuer.key if issuer else k
    b = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(k.public_key())
        .serial_number(serial or x509.random_serial_number())
        .not_valid_before(profile.not_before)
        .not_valid_after(profile.not_after)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(k.public_key()), critical=False)
    )
    if issuer is not None:
        b = b.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()),
            critical=False,
        )
    if profile.ca:
        b = b.add_extension(x509.BasicConstraints(True, profile.path_length), critical=profile.bc_critical)
        usage = {"key_cert_sign": profile.key_cert_sign, "crl_sign": True}
    else:
        b = b.add_extension(x509.BasicConstraints(False, None), critical=True)
        usage = {"key_cert_sign": False, "crl_sign": False}
    b = b.add_extension(
        x509.KeyUsage(
            digital_signature=not profile.ca, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, encipher_only=False, decipher_only=False, **usage,
        ),
        critical=True,
    )  # fmt: skip
    if profile.eku is not None:
        b = b.add_extension(x509.ExtendedKeyUsage(list(profile.eku)), critical=profile.eku_critical)
    if profile.extra_critical:
        b = b.add_extension(
            x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.99999.7"), b"\x05\x00"),
            critical=True,
        )
    return Cert(b.sign(signer, _cert_hash(signer)), k)  # type: ignore[arg-type]


def ca(name: str, kind: str = "p256", **kw: Any) -> Cert:
    """A self-signed CA."""
    return make_cert(name, Profile(key=kind, ca=True, eku=None, **kw))


@dataclass(frozen=True)
class Stamp:
    """How a token is made; the defaults make a sound one."""

    digest: str = "sha256"  # the SignerInfo's digest algorithm
    scheme: str = "auto"  # "pkcs1", "pss" (salt: the hash's length), "pss20", or by the key
    ess: str = "v2"  # "v2", "v1" or "none"
    ess_hash_of: bytes | None = None  # the certificate the ESS attribute names (default the signer)
    content_type: str = "tst_info"
    message_digest: bytes | None = None  # default: the TSTInfo's digest
    imprint: bytes | None = None  # default: SHA-256 of the stamped text
    gen_time: datetime | None = None  # default: now
    chain: tuple[Cert, ...] = ()  # more certificates carried in the token
    by_key_id: bool = False  # the signer named by subject key identifier
    two_signers: bool = False
    tamper: bool = False  # one bit of the signature flipped
    extra: dict[str, Any] = field(default_factory=dict)


def _sign(signer: Cert, data: bytes, stamp: Stamp) -> tuple[bytes, dict[str, Any]]:
    k, h = signer.key, _HASHES[stamp.digest]
    if isinstance(k, ed25519.Ed25519PrivateKey):
        return k.sign(data), {"algorithm": "ed25519"}
    if isinstance(k, ec.EllipticCurvePrivateKey):
        return k.sign(data, ec.ECDSA(h())), {"algorithm": f"{stamp.digest}_ecdsa"}
    if stamp.scheme.startswith("pss"):
        salt = 20 if stamp.scheme == "pss20" else h().digest_size
        params = {
            "hash_algorithm": {"algorithm": stamp.digest},
            "mask_gen_algorithm": {"algorithm": "mgf1", "parameters": {"algorithm": stamp.digest}},
            "salt_length": salt,
        }
        pad = padding.PSS(padding.MGF1(h()), salt)
        return k.sign(data, pad, h()), {"algorithm": "rsassa_pss", "parameters": params}
    return k.sign(data, padding.PKCS1v15(), h()), {"algorithm": f"{stamp.digest}_rsa"}


def token(body: str, signer: Cert, stamp: Stamp = Stamp()) -> bytes:
    """A DER RFC 3161 token over SHA-256 of `body`, signed by `signer` as `stamp` says."""
    tst = tsp.TSTInfo({
        "version": "v1",
        "policy": "1.3.6.1.4.1.99999.1",
        "message_imprint": {
            "hash_algorithm": {"algorithm": "sha256"},
            "hashed_message": stamp.imprint or hashlib.sha256(body.encode()).digest(),
        },
        "serial_number": 7,
        "gen_time": (stamp.gen_time or datetime.now(UTC)).replace(microsecond=0),
        "accuracy": {"seconds": 1},
        "nonce": 12345,
    })  # fmt: skip
    tst_der = tst.dump()
    h = _HASHES.get(stamp.digest, hashes.SHA256)
    digest = hashes.Hash(h())
    digest.update(tst_der)
    cert_asn1 = ax.Certificate.load(signer.der)
    issuer_serial = {
        "issuer": [ax.GeneralName({"directory_name": cert_asn1.issuer})],
        "serial_number": cert_asn1.serial_number,
    }
    named = stamp.ess_hash_of or signer.der
    attrs: list[dict[str, Any]] = [
        {"type": "content_type", "values": [stamp.content_type]},
        {"type": "message_digest", "values": [stamp.message_digest or digest.finalize()]},
    ]
    if stamp.ess == "v2":
        ess = {"hash_algorithm": {"algorithm": "sha256"}, "cert_hash": hashlib.sha256(named).digest(),
               "issuer_serial": issuer_serial}  # fmt: skip
        attrs.append({"type": "signing_certificate_v2", "values": [{"certs": [ess]}]})
    elif stamp.ess == "v1":
        ess = {"cert_hash": hashlib.sha1(named).digest(), "issuer_serial": issuer_serial}
        attrs.append({"type": "signing_certificate", "values": [{"certs": [ess]}]})
    signed_attrs = cms.CMSAttributes(attrs)
    signature, algorithm = _sign(signer, signed_attrs.dump(), stamp)
    if stamp.tamper:
        signature = signature[:-1] + bytes([signature[-1] ^ 0x01])
    if stamp.by_key_id:
        ski = signer.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
        sid = cms.SignerIdentifier({"subject_key_identifier": ski})
    else:
        sid = cms.SignerIdentifier({"issuer_and_serial_number": {
            "issuer": cert_asn1.issuer, "serial_number": cert_asn1.serial_number,
        }})  # fmt: skip
    info = cms.SignerInfo({
        "version": "v3" if stamp.by_key_id else "v1",
        "sid": sid,
        "digest_algorithm": {"algorithm": stamp.digest},
        "signed_attrs": signed_attrs,
        "signature_algorithm": algorithm,
        "signature": signature,
    })  # fmt: skip
    sd = cms.SignedData({
        "version": "v3",
        "digest_algorithms": [{"algorithm": stamp.digest}],
        "encap_content_info": {"content_type": "tst_info", "content": core.ParsableOctetString(tst_der)},
        "certificates": [cert_asn1, *(ax.Certificate.load(c.der) for c in stamp.chain)],
        "signer_infos": [info, info] if stamp.two_signers else [info],
    })  # fmt: skip
    der: bytes = cms.ContentInfo({"content_type": "signed_data", "content": sd}).dump()
    return der


def write_pem(path: Path, *certs: Cert) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(c.pem() for c in certs))
    return path


def tsa(name: str, issuer: Cert, **kw: Any) -> Cert:
    """A TSA certificate issued by `issuer` (Profile's keyword arguments)."""
    return make_cert(name, replace(Profile(), **kw), issuer)
