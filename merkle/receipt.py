"""Receipts (SPEC §5): build one, and verify it offline with one named result per check.

`verify_receipt` never raises for a malformed receipt: it reports a failed "format" check. It
needs nothing but the receipt, the trusted verifier keys and, optionally, the document or digest.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from hashlib import sha256
from typing import Any

import blake3

from merkle.checkpoint import Checkpoint, OpenedCheckpoint, TimestampingVerifier, open_checkpoint
from merkle.cosignature import CosignatureVerifier, verifier_from_key
from merkle.digests import Digest, make_entry, parse_digest, parse_entry
from merkle.hashing import leaf_hash
from merkle.note import NoteVerifier
from merkle.proofs import verify_inclusion

RECEIPT_FORMAT = "notar.receipt.v1"
_HEX = re.compile(r"(?:[0-9a-f]{2})*")
_HASH_HEX = re.compile(r"[0-9a-f]{64}")

AnchorVerifier = Callable[[Mapping[str, Any], Checkpoint, str], tuple[bool, str]]
"""Checks one anchor record against the receipt's checkpoint and its note text: (ok, detail)."""


def build_receipt(
    *,
    digest: Digest,
    salt: bytes,
    origin: str,
    index: int,
    tree_size: int,
    inclusion: Sequence[bytes],
    checkpoint: str,
    anchors: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """The JSON-ready receipt of `digest` notarized with `salt` at `index`."""
    return {
        "format": RECEIPT_FORMAT,
        "digest": str(digest),
        "entry": make_entry(digest, salt).hex(),
        "log": {
            "origin": origin,
            "index": index,
            "tree_size": tree_size,
            "inclusion": [h.hex() for h in inclusion],
        },
        "checkpoint": checkpoint,
        "anchors": [dict(a) for a in anchors],
    }


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class ReceiptResult:
    """Every check that was run, in order; `valid` only when there is at least one and all hold."""

    checks: tuple[Check, ...]
    origin: str | None = None
    index: int | None = None
    tree_size: int | None = None
    signed_time: int | None = None
    log_key: str | None = None
    anchors: tuple[Mapping[str, Any], ...] = field(default=())

    @property
    def valid(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)

    def check(self, name: str) -> Check | None:
        return next((c for c in self.checks if c.name == name), None)

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]


def _parse_structure(receipt: object) -> tuple[Digest, bytes, dict[str, Any], str, list[Mapping[str, Any]]]:
    """The receipt's fields, strictly typed; ValueError naming the first field that is wrong."""
    if not isinstance(receipt, Mapping):
        raise ValueError("a receipt is a JSON object")
    if receipt.get("format") != RECEIPT_FORMAT:
        raise ValueError(f"format must be {RECEIPT_FORMAT!r}")
    digest = parse_digest(receipt.get("digest"))
    entry_hex = receipt.get("entry")
    if not isinstance(entry_hex, str) or not _HEX.fullmatch(entry_hex):
        raise ValueError("entry must be lowercase hex")
    log = receipt.get("log")
    if not isinstance(log, Mapping):
        raise ValueError("log must be an object")
    origin, index, size, inclusion = (log.get(k) for k in ("origin", "index", "tree_size", "inclusion"))
    if not isinstance(origin, str) or not origin:
        raise ValueError("log.origin must be a non-empty string")
    for name, value in (("log.index", index), ("log.tree_size", size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{name} must be a non-negative integer")
    if not isinstance(inclusion, list) or not all(
        isinstance(h, str) and _HASH_HEX.fullmatch(h) for h in inclusion
    ):
        raise ValueError("log.inclusion must be a list of 64-hex-digit hashes")
    if len(inclusion) > 64:
        raise ValueError("log.inclusion is longer than any tree allows")
    checkpoint = receipt.get("checkpoint")
    if not isinstance(checkpoint, str):
        raise ValueError("checkpoint must be the signed note as text")
    anchors = receipt.get("anchors", [])
    if not isinstance(anchors, list) or not all(
        isinstance(a, Mapping) and isinstance(a.get("type"), str) for a in anchors
    ):
        raise ValueError("anchors must be a list of objects with a type")
    parsed_log = {
        "origin": origin,
        "index": index,
        "tree_size": size,
        "inclusion": [bytes.fromhex(h) for h in inclusion],
    }
    return digest, bytes.fromhex(entry_hex), parsed_log, checkpoint, list(anchors)


def hash_document(document: bytes | Iterable[bytes], algorithm: str) -> Digest:
    """The digest of a document given whole or as chunks, with `algorithm` (blake3 or sha256)."""
    chunks = [document] if isinstance(document, bytes | bytearray | memoryview) else document
    if algorithm == "sha256":
        s = sha256()
        for chunk in chunks:
            s.update(chunk)
        return Digest("sha256", s.digest())
    b = blake3.blake3()
    for chunk in chunks:
        b.update(chunk)
    return Digest("blake3", b.digest())


def _verifiers(keys: Iterable[str | NoteVerifier]) -> tuple[list[NoteVerifier], list[TimestampingVerifier]]:
    logs: list[NoteVerifier] = []
    clocks: list[TimestampingVerifier] = []
    for key in keys:
        v = verifier_from_key(key) if isinstance(key, str) else key
        if isinstance(v, CosignatureVerifier):
            clocks.append(v)
        else:
            logs.append(v)
    return logs, clocks


def _time(ts: int) -> str:
    try:
        return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, OSError, ValueError):
        return f"{ts} seconds after 1970-01-01T00:00:00Z"


def _anchor_commits(record: Mapping[str, Any], cp: Checkpoint) -> str | None:
    """Why the record does not commit to `cp`, or None when every field it states matches."""
    if "tree_size" in record and record["tree_size"] != cp.size:
        return f"names tree size {record['tree_size']!r}, the checkpoint has {cp.size}"
    if "root" in record:
        root = record["root"]
        if not isinstance(root, str) or root.lower().removeprefix("0x") != cp.root.hex():
            return "names another root hash than the checkpoint's"
    return None


def verify_receipt(
    receipt: object,
    *,
    keys: Iterable[str | NoteVerifier],
    document: bytes | Iterable[bytes] | None = None,
    digest: str | None = None,
    origin: str | None = None,
    anchor_verifiers: Mapping[str, AnchorVerifier] | None = None,
) -> ReceiptResult:
    """Check a receipt offline against trusted `keys` (signed-note verifier keys: Ed25519 log keys
    and cosignature/v1 clock keys). Malformed keys raise ValueError; a malformed receipt does not.

    Checks, by name: format, document (when a document or digest is given), entry, checkpoint,
    log signature, inclusion, signed time (when a clock key is trusted), and one per anchor.
    """
    log_keys, clock_keys = _verifiers(keys)
    checks: list[Check] = []
    try:
        want, entry, log, note, anchors = _parse_structure(receipt)
    except ValueError as e:
        return ReceiptResult((Check("format", False, f"not a {RECEIPT_FORMAT} receipt: {e}"),))
    checks.append(Check("format", True, RECEIPT_FORMAT))

    if document is not None or digest is not None:
        try:
            got = (
                parse_digest(digest) if digest is not None else hash_document(document or b"", want.algorithm)
            )
        except ValueError as e:
            checks.append(Check("document", False, str(e)))
        else:
            same = got == want
            what = "the document's" if digest is None else "the given"
            checks.append(
                Check("document", same, f"{what} digest {got} {'matches' if same else 'differs from'} {want}")
            )

    try:
        entry_digest, salt = parse_entry(entry)
        ok = entry_digest == want
        checks.append(
            Check(
                "entry",
                ok,
                f"the log entry {'commits' if ok else 'does not commit'} to {want}"
                + (" with a salt" if salt and ok else ""),
            )
        )
    except ValueError as e:
        checks.append(Check("entry", False, f"the log entry is malformed: {e}"))

    opened: OpenedCheckpoint | None = None
    try:
        opened = open_checkpoint(
            note, origin=log["origin"], log_verifiers=log_keys, clock_verifiers=clock_keys
        )
    except ValueError as e:
        checks.append(
            Check(
                "checkpoint",
                False,
                f"the checkpoint is not a valid signed checkpoint of {log['origin']}: {e}",
            )
        )
    if opened is not None:
        cp = opened.checkpoint
        problems = []
        if cp.size != log["tree_size"]:
            problems.append(f"its size is {cp.size}, the receipt says {log['tree_size']}")
        if origin is not None and cp.origin != origin:
            problems.append(f"it is from log {cp.origin!r}, not {origin!r}")
        checks.append(
            Check(
                "checkpoint",
                not problems,
                "; ".join(problems) or f"tree of {cp.size} entries of log {cp.origin}",
            )
        )
        trusted_logs = {(v.name, v.key_id) for v in log_keys}
        bad = [s.name for s in opened.note.invalid if (s.name, s.key_id) in trusted_logs]
        if bad:
            checks.append(
                Check("log signature", False, f"a signature by trusted key {', '.join(bad)} does not verify")
            )
        elif opened.log_key_name is not None:
            checks.append(Check("log signature", True, f"signed by trusted key {opened.log_key_name}"))
        else:
            checks.append(Check("log signature", False, "no signature by a trusted log key"))
        holds = verify_inclusion(leaf_hash(entry), log["index"], log["tree_size"], log["inclusion"], cp.root)
        checks.append(
            Check(
                "inclusion", holds, f"entry {log['index']} {'is' if holds else 'is not'} in the signed tree"
            )
        )
        if clock_keys:
            # A cosignature of a trusted key that fails is tampering (the signed-note spec rejects
            # the note), even when another trusted cosignature vouches for a time.
            trusted_clocks = {(v.name, v.key_id) for v in clock_keys}
            bad = [s.name for s in opened.note.invalid if (s.name, s.key_id) in trusted_clocks]
            t = opened.cosigned_time
            if bad:
                detail = f"a cosignature by trusted key {', '.join(bad)} does not verify"
            elif t is not None:
                detail = f"the service vouched for this tree at {_time(t)}"
            else:
                detail = "no valid timestamped cosignature by a trusted clock key"
            checks.append(Check("signed time", t is not None and not bad, detail))
        for i, record in enumerate(anchors):
            checks.append(_check_anchor(i, record, cp, note, anchor_verifiers or {}))
    return ReceiptResult(
        tuple(checks),
        origin=log["origin"],
        index=log["index"],
        tree_size=log["tree_size"],
        signed_time=opened.cosigned_time if opened else None,
        log_key=opened.log_key_name if opened else None,
        anchors=tuple(anchors),
    )


def _check_anchor(
    i: int, record: Mapping[str, Any], cp: Checkpoint, note: str, verifiers: Mapping[str, AnchorVerifier]
) -> Check:
    kind = str(record["type"])
    name = f"anchor {i + 1} ({kind})"
    why = _anchor_commits(record, cp)
    if why is not None:
        return Check(name, False, f"does not commit to this checkpoint: {why}")
    verifier = verifiers.get(kind)
    if verifier is None:
        return Check(name, True, "commits to this checkpoint; not checked against its source offline")
    body = note[: note.find("\n\n") + 1] if "\n\n" in note else note
    try:
        ok, detail = verifier(record, cp, body)
    except ValueError as e:
        ok, detail = False, f"malformed anchor record: {e}"
    return Check(name, ok, detail)
