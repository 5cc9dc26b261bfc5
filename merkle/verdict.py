"""Offline verification of a receipt (SPEC §5): one named check after another, each `ok`, `failed`
or `not checked` with its reason, needing nothing but the receipt, the trusted verifier keys and,
optionally, the document or its digest.

Checks, in order: `format` (the receipt reads: when it does not, it is the only check), `document`
(not checked when neither document nor digest is given), `entry`, `checkpoint`, `log signature`,
`inclusion` (these four are always checked), `signed time` (not checked when no clock key is
trusted), `witnesses` (only when a witness policy is trusted: `merkle.policy.check_witnesses`), and
`anchor N (<type>)` for each anchor: ok, failed, or not checked for a type this verifier does not
know or a kind it was given no verifier for (EVM needs the chain, RFC 3161 its TSA's CA). A receipt
is valid when no check failed; what was not checked is listed. Keys of a key history count only in
their periods (`merkle.trust`): a checkpoint signed by a key outside its period fails `log
signature`, saying so.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from merkle.aggregate import AnchorTarget
from merkle.anchors.local import local_anchor_verifier
from merkle.checkpoint import OpenedCheckpoint, TimestampingVerifier, open_checkpoint
from merkle.checks import AnchorVerifier, Check, Status
from merkle.digests import ENTRY_NOTAR, hash_document, make_entry, parse_digest
from merkle.hashing import leaf_hash
from merkle.note import NoteVerifier
from merkle.policy import check_witnesses
from merkle.proofs import verify_inclusion
from merkle.receipt import RECEIPT_FORMAT, Anchor, Receipt
from merkle.trust import Trust, split_keys

__all__ = ["ANCHOR_TIME_SLACK_S", "ReceiptResult", "Trust", "split_keys", "verify_receipt"]

ANCHOR_TIME_SLACK_S = 300
"""An anchor may state a time at most this long before the clock's signed time (SPEC §5)."""
OK, FAILED, NOT_CHECKED = Status.OK, Status.FAILED, Status.NOT_CHECKED
_NO_VERIFIER = {
    "local": "no verifier of local anchors was given",
    "evm": "an EVM anchor is checked against its chain, and no chain was asked (notar verify --online)",
    "rfc3161": "an RFC 3161 token is checked against its TSA's CA, none was given (notar verify --tsa-ca)",
}


@dataclass(frozen=True)
class ReceiptResult:
    """Every check, in order (module doc). `receipt` is None when the receipt did not read;
    `signed_time` is the clock's verified time, `log_key` and `clock_key` the trusted keys' names
    that signed."""

    checks: tuple[Check, ...]
    receipt: Receipt | None = None
    signed_time: int | None = None
    log_key: str | None = None
    clock_key: str | None = None

    @property
    def valid(self) -> bool:
        """The receipt read and no check failed (see `unchecked` for what was not checked)."""
        return (
            bool(self.checks)
            and self.checks[0].name == "format"
            and self.checks[0].ok
            and not any(c.status is FAILED for c in self.checks)
        )

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if c.status is FAILED]

    @property
    def unchecked(self) -> list[Check]:
        return [c for c in self.checks if c.status is NOT_CHECKED]

    def check(self, name: str) -> Check | None:
        return next((c for c in self.checks if c.name == name), None)

    @property
    def origin(self) -> str | None:
        return self.receipt.origin if self.receipt else None

    @property
    def index(self) -> int | None:
        return self.receipt.index if self.receipt else None

    @property
    def tree_size(self) -> int | None:
        return self.receipt.tree_size if self.receipt else None

    @property
    def anchors(self) -> tuple[Anchor, ...]:
        return self.receipt.anchors if self.receipt else ()

    def to_obj(self) -> dict[str, Any]:
        """`{valid, checks: [{name, status, ok, detail}], unchecked: [name]}` (SPEC §6, POST /v1/verify)."""
        return {
            "valid": self.valid,
            "checks": [c.to_obj() for c in self.checks],
            "unchecked": [c.name for c in self.unchecked],
        }


def _time(ts: int) -> str:
    try:
        return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, OSError, ValueError):
        return f"{ts} seconds after 1970-01-01T00:00:00Z"


def verify_receipt(
    receipt: Receipt | bytes | str | Mapping[str, object],
    *,
    keys: Iterable[str | NoteVerifier] | Trust,
    document: bytes | Iterable[bytes] | None = None,
    digest: str | None = None,
    origin: str | None = None,
    anchor_verifiers: Mapping[str, AnchorVerifier] | None = None,
) -> ReceiptResult:
    """Check a receipt (typed, JSON text or bytes, or a parsed JSON object) offline against the
    trusted `keys`: signed-note verifier keys (Ed25519 log keys and cosignature/v1 clock keys),
    trusted at every tree size, or a `Trust` (key histories, a witness policy). `origin`, when
    given, is the log the receipt must be from. `anchor_verifiers` by kind add to (or replace) the
    default, which checks `local` blocks under the trusted log keys.

    A malformed receipt never raises: it fails the `format` check. Malformed keys raise ValueError.
    """
    trust = keys if isinstance(keys, Trust) else Trust.of(keys)
    try:
        if isinstance(receipt, Receipt):
            r = receipt
        elif isinstance(receipt, bytes | bytearray | memoryview | str):
            r = Receipt.from_json(bytes(receipt) if not isinstance(receipt, str) else receipt)
        else:
            r = Receipt.from_obj(receipt)
    except ValueError as e:
        return ReceiptResult((Check("format", FAILED, f"not a {RECEIPT_FORMAT} receipt: {e}"),))
    log_keys, clock_keys = trust.log_keys(r.origin, r.tree_size), trust.clock_keys(r.origin, r.tree_size)
    checks = [Check("format", OK, RECEIPT_FORMAT), _document(r, document, digest), _entry(r)]
    opened: OpenedCheckpoint | None = None
    try:
        opened = open_checkpoint(
            r.checkpoint, origin=r.origin, log_verifiers=log_keys, clock_verifiers=clock_keys
        )
    except ValueError as e:
        checks.append(Check("checkpoint", FAILED, f"not a signed checkpoint of log {r.origin}: {e}"))
    if opened is None:
        checks.append(Check("log signature", FAILED, "there is no readable checkpoint to check"))
        checks.append(Check("inclusion", FAILED, "there is no readable checkpoint to prove inclusion in"))
    else:
        checks += [
            _checkpoint(r, opened, origin),
            _log_signature(r.checkpoint, opened, log_keys, trust),
            _inclusion(r, opened),
        ]
    if not clock_keys and trust.outside_period(r.checkpoint, r.origin, r.tree_size, clock=True) is None:
        time_check = Check("signed time", NOT_CHECKED, "no clock key given: the time is not checked")
    elif opened is None:
        time_check = Check("signed time", FAILED, "there is no readable checkpoint to check")
    else:
        time_check = _signed_time(r.checkpoint, opened, clock_keys, trust)
    checks.append(time_check)
    if trust.policy is not None:
        checks.append(check_witnesses(r.checkpoint, trust.policy))
    signed_time = opened.cosigned_time if opened is not None and time_check.ok else None
    verifiers: dict[str, AnchorVerifier] = {"local": local_anchor_verifier(trust.all_log_keys())}
    verifiers.update(anchor_verifiers or {})
    for i, anchor in enumerate(r.anchors):
        checks.append(_anchor(i, anchor, opened, signed_time, verifiers))
    return ReceiptResult(
        tuple(checks),
        r,
        signed_time,
        opened.log_key_name if opened is not None else None,
        opened.cosigned_by if signed_time is not None and opened is not None else None,
    )


def _document(r: Receipt, document: bytes | Iterable[bytes] | None, digest: str | None) -> Check:
    if document is None and digest is None:
        return Check("document", NOT_CHECKED, "no document given: the receipt's digest was not compared")
    try:
        got = (
            parse_digest(digest) if digest is not None else hash_document(document or b"", r.digest.algorithm)
        )
    except ValueError as e:
        return Check("document", FAILED, str(e))
    what = "the document's" if digest is None else "the given"
    if got == r.digest:
        return Check("document", OK, f"{what} digest {got} matches the receipt")
    return Check("document", FAILED, f"{what} digest {got} differs from the receipt's {r.digest}")


def _entry(r: Receipt) -> Check:
    if r.entry[0] != ENTRY_NOTAR:
        return Check(
            "entry", FAILED, f"the log entry is of type 0x{r.entry[0]:02x}, not a notar commitment (0x02)"
        )
    if make_entry(r.digest, r.salt, r.subject) != r.entry:
        return Check("entry", FAILED, "the log entry is not the commitment to this digest, salt and subject")
    return Check("entry", OK, f"the log entry commits to {r.digest}, notarized by {r.subject!r}")


def _checkpoint(r: Receipt, opened: OpenedCheckpoint, origin: str | None) -> Check:
    cp = opened.checkpoint
    problems = []
    if cp.size != r.tree_size:
        problems.append(f"its size is {cp.size}, the receipt says {r.tree_size}")
    if origin is not None and cp.origin != origin:
        problems.append(f"it is from log {cp.origin!r}, not {origin!r}")
    if problems:
        return Check("checkpoint", FAILED, "; ".join(problems))
    entries = "entry" if cp.size == 1 else "entries"
    return Check("checkpoint", OK, f"a tree of {cp.size} {entries} of log {cp.origin}")


def _log_signature(note: str, opened: OpenedCheckpoint, log_keys: list[NoteVerifier], trust: Trust) -> Check:
    cp = opened.checkpoint
    origin = cp.origin
    trusted = {(v.name, v.key_id) for v in log_keys}
    bad = [s.name for s in opened.note.invalid if (s.name, s.key_id) in trusted]
    if bad:
        return Check("log signature", FAILED, f"a signature by trusted key {', '.join(bad)} does not verify")
    if opened.log_key_name is not None:
        return Check("log signature", OK, f"signed by trusted log key {opened.log_key_name}")
    outside = trust.outside_period(note, origin, cp.size)
    if outside is not None:
        return Check("log signature", FAILED, outside)
    others = [s.name for s in opened.note.verified if (s.name, s.key_id) in trusted]
    if others:
        return Check(
            "log signature",
            FAILED,
            f"signed only by trusted key {', '.join(others)}, whose name is not the origin {origin!r}: "
            "a log key signs only the log it is named after",
        )
    return Check("log signature", FAILED, f"no signature by a trusted log key named {origin!r}")


def _inclusion(r: Receipt, opened: OpenedCheckpoint) -> Check:
    try:
        holds = verify_inclusion(
            leaf_hash(r.entry), r.index, r.tree_size, r.inclusion, opened.checkpoint.root
        )
    except ValueError:
        holds = False
    if holds:
        return Check("inclusion", OK, f"entry {r.index} is in the signed tree of {r.tree_size}")
    return Check("inclusion", FAILED, f"the proof does not lead from entry {r.index} to the signed root")


def _signed_time(
    note: str, opened: OpenedCheckpoint, clock_keys: list[TimestampingVerifier], trust: Trust
) -> Check:
    # A trusted cosignature that fails is tampering (the signed-note spec rejects the note), even
    # when another trusted cosignature vouches for a time.
    trusted = {(v.name, v.key_id) for v in clock_keys}
    bad = [s.name for s in opened.note.invalid if (s.name, s.key_id) in trusted]
    if bad:
        return Check("signed time", FAILED, f"a cosignature by trusted key {', '.join(bad)} does not verify")
    if opened.cosigned_time is None:
        cp = opened.checkpoint
        outside = trust.outside_period(note, cp.origin, cp.size, clock=True)
        why = outside or "no valid timestamped cosignature by a trusted clock key"
        return Check("signed time", FAILED, why)
    return Check(
        "signed time",
        OK,
        f"the service vouched for this tree at {_time(opened.cosigned_time)}"
        f" (cosigned by {opened.cosigned_by})",
    )


def _anchor(
    i: int,
    anchor: Anchor,
    opened: OpenedCheckpoint | None,
    signed_time: int | None,
    verifiers: Mapping[str, AnchorVerifier],
) -> Check:
    kind = anchor.type
    name = f"anchor {i + 1} ({kind[:40]})"
    if kind not in verifiers and kind not in _NO_VERIFIER:
        return Check(name, NOT_CHECKED, f"anchor type {kind[:40]!r} is unknown to this verifier")
    if opened is None:
        return Check(name, NOT_CHECKED, "there is no readable checkpoint to check it against")
    fields = anchor.fields()
    try:
        target = AnchorTarget.for_record(fields, opened.checkpoint, opened.note.text)
    except ValueError as e:
        return Check(name, FAILED, f"malformed aggregate: {e}")
    why = target.mismatch(fields)
    if why is not None:
        return Check(name, FAILED, f"does not commit to this checkpoint: {why}")
    verifier = verifiers.get(kind)
    if verifier is None:
        return Check(name, NOT_CHECKED, _NO_VERIFIER[kind])
    try:
        verdict = verifier(anchor, target)
    except ValueError as e:
        return Check(name, FAILED, f"malformed anchor record: {e}")
    if verdict.status is OK and verdict.time is not None and signed_time is not None:
        early = signed_time - verdict.time
        if early > ANCHOR_TIME_SLACK_S:
            return Check(
                name,
                FAILED,
                f"{verdict.detail}; but that is {early} s before the signed time {_time(signed_time)}, more "
                f"than the {ANCHOR_TIME_SLACK_S} s allowed: the anchor cannot be of this checkpoint",
            )
    return Check(name, verdict.status, verdict.detail, verdict.time if verdict.status is OK else None)
