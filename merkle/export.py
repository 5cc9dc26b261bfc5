"""Receipt exports for other tools (SPEC §5): C2SP tlog-proof@v1 and RFC 9942 COSE receipts.

tlog-proof's `extra` data is `salt || u8(len(subject)) || subject || multihash`: a verifier holding
only the document rebuilds the entry (SPEC §1) and its leaf. A COSE receipt is notar's one COSE
receipt profile (merkle.cose, the same as SCITT receipts): signed over the tree root and size by
an Ed25519 key (alg EdDSA) — the log key — so it can only be made where that key lives, and only
over a root that a checkpoint verified under that same key states.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

from merkle.checkpoint import OpenedCheckpoint
from merkle.cose import CoseReceipt, sign_tree_head, verify_receipt
from merkle.cose import receipt as cose_receipt
from merkle.digests import SALT_SIZE, Digest, make_entry, parse_multihash, subject_bytes
from merkle.hashing import check_hash
from merkle.note import Signer, Verifier
from merkle.receipt import Receipt

TLOG_PROOF_HEADER = "c2sp.org/tlog-proof@v1"
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


def to_cose(receipt: Receipt, checkpoint: OpenedCheckpoint, signer: Signer) -> bytes:
    """The receipt as a notar COSE receipt (merkle.cose: RFC 9942, RFC9162_SHA256, the tree size
    signed), signed by `signer`, the log key, over a root that `checkpoint` states. ValueError
    unless `checkpoint` verified under that very key (name and key ID) and states the receipt's
    origin, tree size and the root its inclusion proof leads to: never a root from an unverified
    receipt."""
    cp = checkpoint.checkpoint
    if (cp.origin, cp.size) != (receipt.origin, receipt.tree_size):
        raise ValueError(
            f"the receipt is of tree {receipt.tree_size} of {receipt.origin}, "
            f"the checkpoint of tree {cp.size} of {cp.origin}"
        )
    head = sign_tree_head(checkpoint, signer)
    try:
        return cose_receipt(head, receipt.index, receipt.inclusion, receipt.entry)
    except ValueError:
        raise ValueError("the receipt's inclusion proof does not lead to the checkpoint's root") from None


def verify_cose(data: bytes, verifier: Verifier, entry: bytes | None = None) -> CoseReceipt:
    """Check a notar COSE receipt (merkle.cose.verify_receipt) under the one log key `verifier`,
    for `entry` (default: the receipt's own `notar.entry`). ValueError when malformed or not valid.

    What this proves: the entry is a leaf at `index` of the tree of `tree_size` whose root the log
    key signed, with that size, in the protected header."""
    return verify_receipt(data, [verifier], entry)
