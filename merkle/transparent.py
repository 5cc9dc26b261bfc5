"""Transparent statements checked offline (SPEC §12; RFC 9943 §7): a signed statement and notar
COSE receipts for it — in its unprotected header (label 394) or given beside it — under trusted
log keys, in the verdict model every notar verifier shares (merkle.checks).

Checks, in order:

- ``format``: the statement is a signed statement notar registers (merkle.scitt.parse_statement);
  never "not checked": without it there is nothing to check.
- ``issuer signature``: the statement's signature verifies under the issuer key given; "not
  checked" without one (the receipts prove registration, not who signed).
- ``receipt N``: each receipt is a notar COSE receipt (merkle.cose) whose inclusion proof leads
  from this statement's entry to a root that a trusted log key signed with the tree size; it
  fails naming why. A statement with no receipt fails ``receipt``: it is not transparent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from merkle.checks import Check, Status
from merkle.cose import HDR_RECEIPTS, CoseReceipt, verify_receipt
from merkle.note import Verifier
from merkle.scitt import IssuerKey, Statement, StatementError, parse_statement, verify_signature

OK, FAILED, NOT_CHECKED = Status.OK, Status.FAILED, Status.NOT_CHECKED


@dataclass(frozen=True)
class TransparentResult:
    checks: tuple[Check, ...]
    statement: Statement | None = None
    receipts: tuple[CoseReceipt, ...] = field(default_factory=tuple)

    @property
    def valid(self) -> bool:
        """No check failed (what was not checked is in ``unchecked``)."""
        return not self.failed

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if c.status is FAILED]

    @property
    def unchecked(self) -> list[Check]:
        return [c for c in self.checks if c.status is NOT_CHECKED]

    def to_obj(self) -> dict[str, Any]:
        s = self.statement
        return {
            "valid": self.valid,
            "checks": [c.to_obj() for c in self.checks],
            "unchecked": [c.name for c in self.unchecked],
            "statement": None if s is None else {"iss": s.issuer, "sub": s.subject, "entry": s.entry.hex()},
            "receipts": [
                {
                    "log": r.issuer,
                    "index": r.index,
                    "tree_size": r.tree_size,
                    "kid": r.kid.hex(),
                    "iat": r.issued_at,
                }
                for r in self.receipts
            ],
        }


def embedded_receipts(statement: Statement) -> list[bytes]:
    """The receipts in the statement's unprotected header (394), as byte strings."""
    found = statement.unprotected.get(HDR_RECEIPTS, [])
    if not isinstance(found, list):
        return []
    return [r for r in found if isinstance(r, bytes)]


def verify_transparent(
    statement: bytes,
    *,
    log_keys: Sequence[Verifier],
    receipts: Sequence[bytes] = (),
    issuer_key: IssuerKey | None = None,
    max_size: int = 1 << 24,
) -> TransparentResult:
    """Check a statement with its receipts (those given, then those it carries) under trusted
    Ed25519 ``log_keys``; never raises for bad input (module doc)."""
    try:
        parsed = parse_statement(statement, max_size=max_size)
    except StatementError as e:
        return TransparentResult((Check("format", FAILED, f"{e.title}: {e.detail}"),))
    checks = [
        Check("format", OK, f"a signed statement of {parsed.issuer[:200]!r} about {parsed.subject[:200]!r}")
    ]
    if issuer_key is None:
        checks.append(Check("issuer signature", NOT_CHECKED, "no issuer key given"))
    else:
        try:
            verify_signature(parsed, issuer_key)
            checks.append(Check("issuer signature", OK, "the statement is signed by the issuer key given"))
        except StatementError as e:
            checks.append(Check("issuer signature", FAILED, e.detail))
    every = [*receipts, *embedded_receipts(parsed)]
    if not every:
        checks.append(Check("receipt", FAILED, "no receipt: neither given nor in the statement (394)"))
    good: list[CoseReceipt] = []
    for i, data in enumerate(every, 1):
        try:
            r = verify_receipt(data, log_keys, parsed.entry)
        except ValueError as e:
            checks.append(Check(f"receipt {i}", FAILED, str(e)))
            continue
        good.append(r)
        when = "" if r.issued_at is None else f", at {r.issued_at} (clock-cosigned POSIX time)"
        checks.append(
            Check(
                f"receipt {i}",
                OK,
                f"entry {r.index} of the log {r.issuer}, in a tree of {r.tree_size} entries signed by "
                f"key {r.kid.hex()[:16]}…{when}",
            )
        )
    return TransparentResult(tuple(checks), parsed, tuple(good))
