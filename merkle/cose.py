"""COSE (RFC 9052) as notar uses it: the Sign1 signing input, COSE keys and their RFC 9679
thumbprints, and **notar's COSE receipt profile**, one for SCITT receipts (``POST /entries``) and
for ``notar receipt export --format cose``.

A notar COSE receipt is an RFC 9942 receipt of inclusion for the RFC9162_SHA256 verifiable data
structure, signed with EdDSA (Ed25519) by the log key::

    18([
      protected = bstr .cbor {
        1: -8,                            / alg: EdDSA                                   /
        4: h'<32 bytes>',                 / kid: RFC 9679 thumbprint of the log key       /
        15: {1: origin, 2: origin         / CWT claims: iss and sub, the log's origin     /
             [, 6: time]},                / iat: the checkpoint's clock-cosigned time    /
        395: 1,                           / vds: RFC9162_SHA256                          /
        "notar.tree_size": N              / the tree size, signed                        /
      },
      unprotected = {
        396: {-1: [bstr .cbor [N, index, [hash, ...]]]},   / one inclusion proof          /
        "notar.entry": h'<33 bytes>'                        / the log entry (a hint)       /
      },
      payload = nil,                      / detached: the root of the tree of size N     /
      signature = Ed25519(log key, ["Signature1", protected, h'', root])
    ])

RFC 9942 signs the root alone, so the size and index in its proof are claims: one path leads to
the same root from several (index, size) pairs. notar signs the size too, under the text label
``"notar.tree_size"`` in the protected header; a verifier that knows the label refuses a proof of
another size. The protected header depends only on the checkpoint, so one signature serves every
entry of a batch. Everything is written in deterministic CBOR (merkle.cbor). The receipt is only
ever made over a root that the log's own signed checkpoint states (``sign_tree_head``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from merkle.cbor import Tag, decode, encode
from merkle.checkpoint import OpenedCheckpoint
from merkle.hashing import check_hash, leaf_hash
from merkle.note import Signer, Verifier
from merkle.proofs import root_from_inclusion

TAG_SIGN1 = 18
HDR_ALG, HDR_CRIT, HDR_CTY, HDR_KID = 1, 2, 3, 4
HDR_CWT_CLAIMS = 15
HDR_X5CHAIN, HDR_X5T = 33, 34
HDR_RECEIPTS, HDR_VDS, HDR_VDP = 394, 395, 396
HDR_TREE_SIZE = "notar.tree_size"
HDR_ENTRY = "notar.entry"
CWT_ISS, CWT_SUB, CWT_IAT = 1, 2, 6
ALG_EDDSA, ALG_ES256, ALG_ES384 = -8, -7, -35
VDS_RFC9162_SHA256 = 1
VDP_INCLUSION = -1
KTY_OKP, KTY_EC2 = 1, 2
CRV_P256, CRV_P384, CRV_ED25519 = 1, 2, 6
KEY_KTY, KEY_KID, KEY_ALG, KEY_CRV, KEY_X, KEY_Y = 1, 2, 3, -1, -2, -3
_THUMBPRINT_PARAMS = {KTY_OKP: (KEY_KTY, KEY_CRV, KEY_X), KTY_EC2: (KEY_KTY, KEY_CRV, KEY_X, KEY_Y)}


def sig_structure(protected: bytes, payload: bytes) -> bytes:
    """RFC 9052 §4.4: what a COSE_Sign1 signs, with no external data."""
    return encode(["Signature1", protected, b"", payload])


def thumbprint(key: Mapping[int, object]) -> bytes:
    """RFC 9679: SHA-256 of the deterministic CBOR of the key's required parameters (OKP: kty,
    crv, x; EC2: kty, crv, x, y). ``ValueError`` for another key type or a missing parameter."""
    kty = key.get(KEY_KTY)
    params = _THUMBPRINT_PARAMS.get(kty) if isinstance(kty, int) else None
    if params is None:
        raise ValueError(f"no RFC 9679 thumbprint for key type {key.get(KEY_KTY)!r}")
    missing = [p for p in params if p not in key]
    if missing:
        raise ValueError(f"the COSE key lacks the parameters {missing}")
    return hashlib.sha256(encode({p: key[p] for p in params})).digest()


def ed25519_key(public_key: bytes) -> dict[int, object]:
    """The COSE key (OKP, Ed25519, alg EdDSA) of an Ed25519 public key, with its thumbprint as kid."""
    if len(public_key) != 32:
        raise ValueError("an Ed25519 public key is 32 bytes")
    key: dict[int, object] = {KEY_KTY: KTY_OKP, KEY_CRV: CRV_ED25519, KEY_X: public_key}
    return {**key, KEY_KID: thumbprint(key), KEY_ALG: ALG_EDDSA}


def log_kid(public_key: bytes) -> bytes:
    """The kid of a log key in COSE receipts and ``/.well-known/scitt-keys``."""
    return thumbprint({KEY_KTY: KTY_OKP, KEY_CRV: CRV_ED25519, KEY_X: public_key})


def key_set(public_keys: Iterable[bytes]) -> bytes:
    """A COSE Key Set (RFC 9052 §7) of Ed25519 log keys, in the order given, each once."""
    seen: list[bytes] = []
    for key in public_keys:
        if key not in seen:
            seen.append(key)
    return encode([ed25519_key(k) for k in seen])


@dataclass(frozen=True)
class SignedTreeHead:
    """A checkpoint's tree head signed for COSE receipts: the protected header and the signature
    over the root. Shared by every receipt of an entry of that tree."""

    origin: str
    tree_size: int
    root: bytes
    protected: bytes
    signature: bytes


def sign_tree_head(checkpoint: OpenedCheckpoint, signer: Signer) -> SignedTreeHead:
    """The receipt signature of ``checkpoint``'s tree head by ``signer``, the log key. ValueError
    unless the checkpoint verified under that very key (name and key ID): notar never signs a root
    that its log's own signed checkpoint does not state. ``iat`` is the clock-cosigned time when
    the checkpoint was opened with the clock key."""
    cp = checkpoint.checkpoint
    signed_by = {(s.name, s.key_id) for s in checkpoint.note.verified}
    if not checkpoint.ok or (signer.name, signer.key_id) not in signed_by or signer.name != cp.origin:
        raise ValueError(
            f"the checkpoint is not verified under the log key {signer.name}+{signer.key_id:08x}"
        )
    claims: dict[int, object] = {CWT_ISS: cp.origin, CWT_SUB: cp.origin}
    if checkpoint.cosigned_time is not None:
        claims[CWT_IAT] = checkpoint.cosigned_time
    header = {
        HDR_ALG: ALG_EDDSA,
        HDR_KID: log_kid(signer.public_key),
        HDR_CWT_CLAIMS: claims,
        HDR_VDS: VDS_RFC9162_SHA256,
        HDR_TREE_SIZE: cp.size,
    }
    protected = encode(header)
    return SignedTreeHead(
        cp.origin, cp.size, cp.root, protected, signer.sign(sig_structure(protected, cp.root))
    )


def receipt(head: SignedTreeHead, index: int, inclusion: Sequence[bytes], entry: bytes) -> bytes:
    """The COSE receipt of ``entry`` at ``index`` of ``head``'s tree (module doc). ValueError when
    the inclusion proof does not lead from the entry to the signed root."""
    path = [check_hash(h, "inclusion hash") for h in inclusion]
    if root_from_inclusion(leaf_hash(entry), index, head.tree_size, path) != head.root:
        raise ValueError("the inclusion proof does not lead to the signed tree head's root")
    proof = encode([head.tree_size, index, path])
    unprotected = {HDR_VDP: {VDP_INCLUSION: [proof]}, HDR_ENTRY: entry}
    return encode(Tag(TAG_SIGN1, [head.protected, unprotected, None, head.signature]))


@dataclass(frozen=True)
class CoseReceipt:
    """A verified notar COSE receipt: ``entry`` is in the tree of size ``tree_size`` at ``index``,
    whose root the log key ``kid`` signed (with the size), as ``issuer`` at ``issued_at``."""

    kid: bytes
    issuer: str
    tree_size: int
    index: int
    inclusion: list[bytes]
    root: bytes
    entry: bytes
    issued_at: int | None
    protected: dict[object, object]


def decode_sign1(
    data: bytes, what: str
) -> tuple[bytes, dict[object, object], dict[object, object], object, bytes]:
    """(protected bytes, protected map, unprotected map, payload, signature) of a tagged COSE_Sign1;
    ValueError naming ``what`` when it is not one."""
    value = decode(data)
    if not isinstance(value, Tag) or value.number != TAG_SIGN1:
        raise ValueError(f"{what} is not a tagged COSE_Sign1 (CBOR tag 18)")
    parts = value.value
    if not isinstance(parts, list) or len(parts) != 4:
        raise ValueError(f"{what} is not [protected, unprotected, payload, signature]")
    protected_raw, unprotected, payload, signature = parts
    if not isinstance(protected_raw, bytes) or not isinstance(unprotected, dict):
        raise ValueError(
            f"{what}: the protected header is not a byte string or the unprotected one not a map"
        )
    if not isinstance(signature, bytes) or (payload is not None and not isinstance(payload, bytes)):
        raise ValueError(f"{what}: the payload or the signature is not a byte string")
    protected = decode(protected_raw) if protected_raw else {}
    if not isinstance(protected, dict):
        raise ValueError(f"{what}: the protected header is not a map")
    return protected_raw, protected, unprotected, payload, signature


def read_receipt(data: bytes, entry: bytes | None = None) -> tuple[CoseReceipt, bytes, bytes]:
    """The receipt's claims, with the root its proof implies for ``entry`` (or for its own
    ``notar.entry``); the message its signature covers, and the signature (``verify_receipt``
    checks them). ValueError
    when it is not a notar COSE receipt (module doc) or its proof is not of the signed size."""
    protected_raw, protected, unprotected, payload, signature = decode_sign1(data, "the COSE receipt")
    if payload is not None:
        raise ValueError("a COSE receipt's payload is detached (nil): the root is recomputed")
    if protected.get(HDR_ALG) != ALG_EDDSA:
        raise ValueError("COSE receipt algorithm must be EdDSA (-8)")
    if protected.get(HDR_VDS) != VDS_RFC9162_SHA256:
        raise ValueError("COSE receipt must use the RFC9162_SHA256 verifiable data structure (395: 1)")
    kid = protected.get(HDR_KID)
    if not isinstance(kid, bytes) or len(kid) != 32:
        raise ValueError("the COSE receipt's key ID (kid) must be a 32-byte RFC 9679 thumbprint")
    signed_size = protected.get(HDR_TREE_SIZE)
    if isinstance(signed_size, bool) or not isinstance(signed_size, int):
        raise ValueError(f"the COSE receipt's protected header has no {HDR_TREE_SIZE!r}: not a notar receipt")
    claims = protected.get(HDR_CWT_CLAIMS)
    issuer = claims.get(CWT_ISS) if isinstance(claims, dict) else None
    if not isinstance(issuer, str):
        raise ValueError("the COSE receipt's CWT claims (15) name no issuer (1)")
    iat = claims.get(CWT_IAT) if isinstance(claims, dict) else None
    vdp = unprotected.get(HDR_VDP)
    proofs = vdp.get(VDP_INCLUSION) if isinstance(vdp, dict) else None
    if not isinstance(proofs, list) or len(proofs) != 1 or not isinstance(proofs[0], bytes):
        raise ValueError("a COSE receipt needs exactly one inclusion proof (396: {-1: [bstr]})")
    proof = decode(proofs[0])
    if not isinstance(proof, list) or len(proof) != 3:
        raise ValueError("malformed RFC9162 inclusion proof: not [tree_size, index, path]")
    size, index, path = proof
    if any(isinstance(n, bool) or not isinstance(n, int) for n in (size, index)) or not isinstance(
        path, list
    ):
        raise ValueError("malformed RFC9162 inclusion proof: not [tree_size, index, path]")
    if size != signed_size:
        raise ValueError(
            f"the inclusion proof is for tree size {size}, the signed tree size is {signed_size}"
        )
    own = unprotected.get(HDR_ENTRY)
    leaf = entry if entry is not None else own
    if not isinstance(leaf, bytes):
        raise ValueError("no log entry to verify the COSE receipt against")
    hashes = [check_hash(h, "proof hash") if isinstance(h, bytes) else _not_bytes() for h in path]
    root = root_from_inclusion(leaf_hash(leaf), index, size, hashes)
    iat_value = iat if isinstance(iat, int) and not isinstance(iat, bool) else None
    result = CoseReceipt(kid, issuer, size, index, hashes, root, leaf, iat_value, protected)
    return result, sig_structure(protected_raw, root), signature


def _not_bytes() -> bytes:
    raise ValueError("an inclusion proof hash is not a byte string")


def verify_receipt(data: bytes, keys: Iterable[Verifier], entry: bytes | None = None) -> CoseReceipt:
    """Check a notar COSE receipt under trusted Ed25519 log ``keys``: its kid is the thumbprint of
    one of them, that key's signature covers the protected header (with the tree size) and the
    root the inclusion proof implies for ``entry`` (default: the receipt's ``notar.entry``), and
    the issuer is that key's name. ValueError when malformed or not valid."""
    claims, message, signature = read_receipt(data, entry)
    key = next((k for k in keys if log_kid(k.public_key) == claims.kid), None)
    if key is None:
        raise ValueError(f"the COSE receipt is signed by key {claims.kid.hex()}, which is not trusted")
    if claims.issuer != key.name:
        raise ValueError(
            f"the COSE receipt's issuer {claims.issuer[:100]!r} is not its key's log {key.name!r}"
        )
    if not key.verify(message, signature):
        raise ValueError("the COSE receipt's signature does not verify")
    return claims
