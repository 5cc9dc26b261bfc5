"""RFC 3161 anchors for the corpus: one receipt per case, each with the TSA CA file it is checked
against and whether it is valid. The page (WebCrypto) and `notar verify --tsa-ca` must agree on
every one: sound tokens of EC, RSA (PKCS#1 v1.5, PSS) and Ed25519 TSAs, chains through
intermediates, and tokens that differ from a sound one in one way each."""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.x509.oid import ExtendedKeyUsageOID

from tests.services.verify import tokens
from tests.services.verify.tokens import Cert, Stamp, ca, make_cert, token, tsa, write_pem

Obj = dict[str, Any]


@dataclass(frozen=True)
class Case:
    name: str
    receipt: Obj
    ca: Path
    valid: bool


def _at(ts: int) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def cases(work: Path, body: str, signed_at: int, anchored: Callable[[list[Obj]], Obj]) -> list[Case]:
    """The cases for a checkpoint whose body is `body`, signed at `signed_at`; `anchored(records)`
    is the receipt with those anchors."""
    when = _at(signed_at + 30)
    p256_ca, p384_ca = ca("notar test EC CA", "p256:ca"), ca("notar test P-384 CA", "p384:ca")
    rsa_ca, weak_ca = ca("notar test RSA CA", "rsa2048:ca"), ca("weak RSA CA", "rsa1024:ca")
    rogue = ca("rogue CA", "p256:rogue")
    no_sign = ca("CA without keyCertSign", "p256:nosign", key_cert_sign=False)
    inter = tokens.make_cert(
        "notar test intermediate", tokens.Profile(key="p256:inter", ca=True, eku=None, path_length=0), p256_ca
    )
    files = {
        "ec": write_pem(work / "ca-ec.pem", p256_ca),
        "p384": write_pem(work / "ca-p384.pem", p384_ca),
        "rsa": write_pem(work / "ca-rsa.pem", rsa_ca),
        "weak": write_pem(work / "ca-weak.pem", weak_ca),
        "both": write_pem(work / "ca-both.pem", rogue, rsa_ca),
        "intermediate": write_pem(work / "ca-intermediate.pem", inter),
        "nosign": write_pem(work / "ca-nosign.pem", no_sign),
    }
    ec_tsa = tsa("EC TSA", p256_ca, key="p256:tsa")
    rsa_tsa = tsa("RSA TSA", rsa_ca, key="rsa2048:tsa")
    rsa3072 = tsa("RSA-3072 TSA", rsa_ca, key="rsa3072:tsa")
    day = timedelta(days=1)
    out: list[Case] = []

    def add(name: str, signer: Cert, ca_file: str, valid: bool, text: str = body, **stamp: Any) -> None:
        raw = token(text, signer, Stamp(**{"gen_time": when, **stamp}))
        record = {"type": "rfc3161", "tsa": "http://tsa.test/", "token": base64.b64encode(raw).decode()}
        out.append(Case(f"rfc3161-{name}", anchored([record]), files[ca_file], valid))

    add("ec-p256", ec_tsa, "ec", True)
    p384_tsa = tsa("P-384 TSA", p384_ca, key="p384:tsa")
    add("ec-p384-sha384", p384_tsa, "p384", True, digest="sha384")
    add("ec-sha512-digest", ec_tsa, "ec", True, digest="sha512")
    add("rsa-pkcs1", rsa_tsa, "rsa", True)
    add("rsa-pss", rsa3072, "rsa", True, scheme="pss")
    add("rsa-pss-salt-20-sha384", rsa_tsa, "rsa", True, scheme="pss20", digest="sha384")
    add("ed25519", tsa("Ed25519 TSA", p256_ca, key="ed25519:tsa"), "ec", True)
    add("ess-v1", ec_tsa, "ec", True, ess="v1")
    add("signer-by-key-id", ec_tsa, "ec", True, by_key_id=True)
    add("second-ca-in-file", rsa_tsa, "both", True)
    inter_tsa = tsa("TSA under an intermediate", inter, key="p256:tsa2")
    add("intermediate-in-token", inter_tsa, "ec", True, chain=(inter,))
    add("intermediate-trusted", inter_tsa, "intermediate", True)
    add("intermediate-missing", inter_tsa, "ec", False)
    for purpose, ok in (("timestamping", True), ("client-auth", False)):
        eku = ExtendedKeyUsageOID.TIME_STAMPING if ok else ExtendedKeyUsageOID.CLIENT_AUTH
        profile = tokens.Profile(key=f"p256:{purpose}", ca=True, eku=(eku,), eku_critical=False)
        restricted = make_cert(f"intermediate for {purpose}", profile, p256_ca)
        signer = tsa(f"TSA under a {purpose} intermediate", restricted)
        add(f"intermediate-eku-{purpose}", signer, "ec", ok, chain=(restricted,))
    expired = tsa("expired TSA", p256_ca, not_before=when - 400 * day, not_after=when - day)
    add("tsa-expired-at-gen-time", expired, "ec", False)
    later = tsa("later TSA", p256_ca, not_before=when + day)
    add("tsa-not-yet-valid-at-gen-time", later, "ec", False)
    lapsed = tsa("lapsed TSA", p256_ca, not_before=when - day, not_after=when + day)
    add("tsa-expired-since-valid-then", lapsed, "ec", True)
    add("wrong-ca", ec_tsa, "rsa", False)
    add("rogue-tsa", tsa("rogue TSA", rogue), "ec", False)
    add("tampered-signature", ec_tsa, "ec", False, tamper=True)
    add("rsa-tampered-signature", rsa_tsa, "rsa", False, tamper=True)
    add("wrong-imprint", ec_tsa, "ec", False, text=body.replace("\n", " \n", 1))
    add("no-eku", tsa("TSA without EKU", p256_ca, eku=None), "ec", False)
    add("eku-not-critical", tsa("TSA with a non-critical EKU", p256_ca, eku_critical=False), "ec", False)
    both = (ExtendedKeyUsageOID.TIME_STAMPING, ExtendedKeyUsageOID.CLIENT_AUTH)
    add("eku-not-alone", tsa("TSA of two purposes", p256_ca, eku=both), "ec", False)
    client = tsa("client, not TSA", p256_ca, eku=(ExtendedKeyUsageOID.CLIENT_AUTH,))
    add("eku-client-auth", client, "ec", False)
    strange = tsa("TSA with a strange extension", p256_ca, extra_critical=True)
    add("unknown-critical-extension", strange, "ec", False)
    add("no-ess", ec_tsa, "ec", False, ess="none")
    add("ess-names-another", ec_tsa, "ec", False, ess_hash_of=rsa_tsa.der)
    add("message-digest-wrong", ec_tsa, "ec", False, message_digest=bytes(32))
    add("content-type-wrong", ec_tsa, "ec", False, content_type="data")
    add("sha1-digest", ec_tsa, "ec", False, digest="sha1")
    add("two-signers", ec_tsa, "ec", False, two_signers=True)
    add("301-s-before-signed-time", ec_tsa, "ec", False, gen_time=_at(signed_at - 301))
    add("weak-rsa-ca", tsa("TSA of a weak CA", weak_ca), "weak", False)
    add("ca-without-key-cert-sign", tsa("TSA of a CA that may not sign", no_sign), "nosign", False)
    deep = make_cert("too deep", tokens.Profile(key="p256:deep", ca=True, eku=None), inter)
    add("path-length-exceeded", tsa("TSA too deep", deep), "ec", False, chain=(inter, deep))
    return out
