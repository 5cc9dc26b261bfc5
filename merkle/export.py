"""Receipt exports for other tools (SPEC §5): C2SP tlog-proof@v1 and RFC 9942 COSE receipts.

tlog-proof's `extra` data is `salt || u8(len(subject)) || subject || multihash`: a verifier holding
only the document rebuilds the entry (SPEC §1) and its leaf. A COSE receipt is signed over the tree
root by an Ed25519 key (alg EdDSA) — the log key — so it can only be made where that key lives, and
only over a root that a checkpoint verified under that same key states.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import cbor2

from merkle.checkpoint import OpenedCheckpoint
from merkle.digests import SALT_SIZE, Digest, make_entry, parse_multihash, subject_bytes
from merkle.hashing import check_hash, leaf_hash
from merkle.note import NoteSigner, NoteVerifier
from merkle.proofs import root_from_inclusion
from merkle.receipt import Receipt

TLOG_PROOF_HEADER = "c2sp.org/tlog-proof@v1"
COSE_ALG_EDDSA = -8
COSE_HDR_ALG, COSE_HDR_KID = 1, 4
COSE_HDR_VDS, COSE_HDR_VDP = 395, 396
VDS_RFC9162_SHA256 = 1
VDP_INCLUSION = -1
COSE_HDR_NOTAR_ENTRY = "notar.entry"  # a text label: the log entry, so the leaf can be rebuilt
_TAG_COSE_SIGN1 = 18
_DECIMAL = re.compile(r"0|[1-9][0-9]*")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: str, what: str) -> bytes:
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as e:
        raise ValueError(f"{what} is not base64") from e
    if _b64(data) != text:
        raise ValueError(f"{what} is not canonical base64")
    return data


@dataclass(frozen=True)
class TlogProof:
    """A notar tlog-proof: the entry's `index`, inclusion `proof`, the signed `checkpoint` note, and
    from `extra` the digest, salt and subject that rebuild the entry."""

    index: int
    proof: list[bytes]
    checkpoint: str
    extra: bytes
    digest: Digest
    salt: bytes
    subject: str

    @property
    def entry(self) -> bytes:
        """The log entry that `extra` rebuilds (SPEC §1)."""
        return make_entry(self.digest, self.salt, self.subject)


def tlog_extra(receipt: Receipt) -> bytes:
    """`salt || u8(len(subject)) || subject || multihash`."""
    subject = subject_bytes(receipt.subject)
    return receipt.salt + bytes((len(subject),)) + subject + receipt.digest.multihash


def parse_tlog_extra(extra: bytes) -> tuple[Digest, bytes, str]:
    """The digest, salt and subject of a notar tlog-proof's extra data; ValueError otherwise."""
    if len(extra) < SALT_SIZE + 1:
        raise ValueError("the extra data is too short for salt, subject and multihash")
    n = extra[SALT_SIZE]
    start = SALT_SIZE + 1
    try:
        subject = extra[start : start + n].decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("the extra data's subject is not UTF-8") from None
    subject_bytes(subject)
    digest, rest = parse_multihash(extra[start + n :])
    if rest:
        raise ValueError(f"the extra data has {len(rest)} bytes after the multihash")
    return digest, extra[:SALT_SIZE], subject


def to_tlog_proof(receipt: Receipt) -> str:
    """The receipt as a `c2sp.org/tlog-proof@v1` text (`tlog_extra` as extra data)."""
    lines = [TLOG_PROOF_HEADER, f"extra {_b64(tlog_extra(receipt))}", f"index {receipt.index}"]
    lines.extend(_b64(h) for h in receipt.inclusion)
    return "\n".join(lines) + "\n\n" + receipt.checkpoint


def parse_tlog_proof(text: str) -> TlogProof:
    """Strict parser of a notar tlog-proof@v1 text (its extra data as `tlog_extra` writes it);
    ValueError on anything malformed."""
    if not isinstance(text, str):
        raise ValueError("a tlog-proof must be text")
    head, sep, checkpoint = text.partition("\n\n")
    if not sep or not checkpoint:
        raise ValueError("a tlog-proof needs a blank line followed by the checkpoint")
    lines = head.split("\n")
    if lines[0] != TLOG_PROOF_HEADER:
        raise ValueError(f"a tlog-proof starts with {TLOG_PROOF_HEADER!r}")
    if len(lines) < 2 or not lines[1].startswith("extra "):
        raise ValueError("a notar tlog-proof has an 'extra' line: salt, subject and multihash")
    extra = _unb64(lines[1][6:], "extra data")
    digest, salt, subject = parse_tlog_extra(extra)
    if len(lines) < 3 or not lines[2].startswith("index "):
        raise ValueError("a tlog-proof needs an 'index N' line")
    digits = lines[2][6:]
    if not _DECIMAL.fullmatch(digits):
        raise ValueError("the index of a tlog-proof is a decimal without leading zeros")
    proof = [
        check_hash(_unb64(line, f"proof line {i}"), f"proof line {i}") for i, line in enumerate(lines[3:])
    ]
    return TlogProof(int(digits), proof, checkpoint, extra, digest, salt, subject)


def _kid(name: str, key_id: int) -> bytes:
    return f"{name}+{key_id:08x}".encode()


def _sig_structure(protected: bytes, payload: bytes) -> bytes:
    return bytes(cbor2.dumps(["Signature1", protected, b"", payload], canonical=True))


def to_cose(receipt: Receipt, checkpoint: OpenedCheckpoint, signer: NoteSigner) -> bytes:
    """An RFC 9942 COSE_Sign1 receipt (RFC9162_SHA256 inclusion proof, detached root payload),
    signed by `signer`, the log key, over a root that `checkpoint` states. ValueError unless
    `checkpoint` verified under that very key (name and key ID) and states the receipt's origin,
    tree size and the root its inclusion proof leads to: never a root from an unverified receipt."""
    cp = checkpoint.checkpoint
    signed_by = {(s.name, s.key_id) for s in checkpoint.note.verified}
    if not checkpoint.ok or (signer.name, signer.key_id) not in signed_by or signer.name != cp.origin:
        raise ValueError(
            f"the checkpoint is not verified under the log key {signer.name}+{signer.key_id:08x}"
        )
    if (cp.origin, cp.size) != (receipt.origin, receipt.tree_size):
        raise ValueError(
            f"the receipt is of tree {receipt.tree_size} of {receipt.origin}, "
            f"the checkpoint of tree {cp.size} of {cp.origin}"
        )
    index, size, path = receipt.index, receipt.tree_size, list(receipt.inclusion)
    if root_from_inclusion(leaf_hash(receipt.entry), index, size, path) != cp.root:
        raise ValueError("the receipt's inclusion proof does not lead to the checkpoint's root")
    protected = bytes(
        cbor2.dumps(
            {
                COSE_HDR_ALG: COSE_ALG_EDDSA,
                COSE_HDR_KID: _kid(signer.name, signer.key_id),
                COSE_HDR_VDS: VDS_RFC9162_SHA256,
            },
            canonical=True,
        )
    )
    proof = bytes(cbor2.dumps([size, index, path], canonical=True))
    unprotected = {COSE_HDR_VDP: {VDP_INCLUSION: [proof]}, COSE_HDR_NOTAR_ENTRY: receipt.entry}
    signature = signer.sign(_sig_structure(protected, cp.root))
    return bytes(cbor2.dumps(cbor2.CBORTag(_TAG_COSE_SIGN1, [protected, unprotected, None, signature])))


@dataclass(frozen=True)
class CoseReceipt:
    kid: bytes
    tree_size: int
    index: int
    inclusion: list[bytes]
    root: bytes
    entry: bytes | None


def _decode_cose(data: bytes) -> tuple[bytes, dict[Any, Any], bytes]:
    # Tag 18 is the single byte 0xd2; decoding past it keeps cbor2 from freezing the contents.
    if not isinstance(data, bytes) or data[:1] != b"\xd2":
        raise ValueError("a COSE receipt is a tagged COSE_Sign1 (tag 18)")
    try:
        value = cbor2.loads(data[1:])
    except Exception as e:  # cbor2 raises several kinds on garbage; all mean "malformed"
        raise ValueError("not a CBOR COSE receipt") from e
    if not isinstance(value, list) or len(value) != 4 or value[2] is not None:
        raise ValueError("a COSE receipt is [protected, unprotected, nil, signature]")
    protected, unprotected, _, signature = value
    if (
        not isinstance(protected, bytes)
        or not isinstance(unprotected, dict)
        or not isinstance(signature, bytes)
    ):
        raise ValueError("malformed COSE_Sign1 fields")
    return protected, unprotected, signature


def verify_cose(data: bytes, verifier: NoteVerifier, entry: bytes | None = None) -> CoseReceipt:
    """Check a COSE receipt's signature over the root its inclusion proof implies for `entry`
    (or the receipt's own `notar.entry`). Raises ValueError when malformed or not valid.

    What this proves: the entry is a leaf of the tree whose root the log key signed. The tree size
    and index returned are the receipt's claims: RFC 9942 signs the root alone, and one path leads
    to the same root from several (index, size) pairs (index 0 of any size from 17 to 32 with a
    5-hash path). Order and size need the signed checkpoint, as in a notar receipt."""
    protected_raw, unprotected, signature = _decode_cose(data)
    try:
        protected = cbor2.loads(protected_raw)
    except Exception as e:
        raise ValueError("malformed COSE protected header") from e
    if not isinstance(protected, Mapping) or protected.get(COSE_HDR_ALG) != COSE_ALG_EDDSA:
        raise ValueError("COSE receipt algorithm must be EdDSA (-8)")
    if protected.get(COSE_HDR_VDS) != VDS_RFC9162_SHA256:
        raise ValueError("COSE receipt must use the RFC9162_SHA256 verifiable data structure")
    kid = protected.get(COSE_HDR_KID, b"")
    if not isinstance(kid, bytes):  # bytes(kid) of a text or a huge int would raise or eat memory
        raise ValueError("the COSE receipt's key ID (kid) must be a byte string")
    proofs = (
        unprotected.get(COSE_HDR_VDP, {}).get(VDP_INCLUSION)
        if isinstance(unprotected.get(COSE_HDR_VDP), dict)
        else None
    )
    if not isinstance(proofs, list) or len(proofs) != 1 or not isinstance(proofs[0], bytes):
        raise ValueError("COSE receipt needs exactly one inclusion proof")
    try:
        size, index, path = cbor2.loads(proofs[0])
    except Exception as e:
        raise ValueError("malformed RFC9162 inclusion proof") from e
    if not isinstance(size, int) or not isinstance(index, int) or not isinstance(path, list | tuple):
        raise ValueError("malformed RFC9162 inclusion proof")
    own = unprotected.get(COSE_HDR_NOTAR_ENTRY)
    leaf_entry = entry if entry is not None else own
    if not isinstance(leaf_entry, bytes):
        raise ValueError("no log entry to verify the COSE receipt against")
    root = root_from_inclusion(
        leaf_hash(leaf_entry), index, size, [check_hash(p, "proof hash") for p in path]
    )
    if kid != _kid(verifier.name, verifier.key_id):
        raise ValueError(f"COSE receipt was signed by {kid[:100]!r}, not by {verifier.name}")
    if not verifier.verify(_sig_structure(protected_raw, root), signature):
        raise ValueError("COSE receipt signature does not verify")
    return CoseReceipt(kid, size, index, list(path), root, own if isinstance(own, bytes) else None)
