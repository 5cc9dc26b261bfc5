"""What the evidence report of `notar verify --report` says (services/cli/report.py draws it): the
verdict with what was not checked, the document, the log entry, a timeline (notarized, signed time,
each anchor with its time), each check with what it establishes, and what was trusted. The web
page's print view (services/verify/static/page.js, timeline.js) shows the same, in the same words.
No drawing here, and nothing read but what it is given."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from cryptography import x509

from merkle.anchors.rfc3161 import read_token
from merkle.checks import Check, Status
from merkle.receipt import Anchor
from merkle.verdict import ReceiptResult, split_keys

MEANING = {
    "format": "the file is a notar receipt",
    "document": "the document is the one that was notarized",
    "entry": "the log entry commits to this fingerprint, its random salt and the notarizing organisation",
    "checkpoint": "the signed tree head is of this log and of the receipt's size",
    "log signature": "the tree head is signed by a log key you trust",
    "inclusion": "the entry is in that signed tree (RFC 9162 inclusion proof)",
    "signed time": "the service's clock vouched for the tree at that time",
    "witnesses": "as many independent witnesses as the policy asks cosigned the tree head",
    "published log": "the log as its server publishes it now still contains this tree: it was not rewritten",
}
WHY_NOT = {
    "format": "This file is not a notar receipt, or it is damaged.",
    "document": "The document is not the one that was notarized: it was changed, or it is another file. "
    "Even one changed byte gives a different fingerprint.",
    "entry": "The receipt was altered: its log entry is not the fingerprint it names.",
    "checkpoint": "The receipt's signed tree head is damaged, or belongs to another log.",
    "log signature": "The receipt is not signed by the key you trust: it was altered, it comes from another "
    "log, or the key is not the right one.",
    "inclusion": "The receipt was altered: the proof that the entry is in the signed log does not hold.",
    "signed time": "No trusted clock signature vouches for the time of this receipt.",
    "witnesses": "The witnesses the policy asks for have not cosigned this receipt's tree head: fetch the "
    "receipt again (upgraded receipts carry their cosignatures), or it was altered.",
    "published log": "The log its server publishes now does not contain this receipt's tree: the log was "
    "rewritten (forked), or the server publishes another log under that name.",
}
KINDS = {"local": "local chain", "evm": "EVM chain", "rfc3161": "RFC 3161"}
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December")  # fmt: skip


def human_time(ts: int) -> str:
    """'14 November 2023, 22:13:20 UTC' (the page's words for a time)."""
    try:
        d = datetime.fromtimestamp(ts, UTC)
    except (OverflowError, OSError, ValueError):
        return f"{ts} seconds after 1970-01-01T00:00:00Z"
    return f"{d.day} {MONTHS[d.month - 1]} {d.year}, {d:%H:%M:%S} UTC"


@dataclass(frozen=True)
class Event:
    """One point of the timeline; `claimed` when its time was read but not checked."""

    label: str
    kind: str
    time: int | None
    status: Status
    claimed: bool = False

    def time_lines(self) -> tuple[str, str]:
        """Its time in two lines (date, time of day), or why it has none."""
        if self.time is None:
            return ("before the", "signed time") if self.label == "Notarized" else ("no time", "known here")
        try:
            d = datetime.fromtimestamp(self.time, UTC)
        except (OverflowError, OSError, ValueError):
            return (f"{self.time} s after", "1970 (claimed)")
        return f"{d:%Y-%m-%d}", f"{d:%H:%M:%S} UTC" + (" (claimed)" if self.claimed else "")


def gap(earlier: int, later: int) -> str:
    """The time between two events in words ("+12 s", "+3 min", "+2 h", "+4 d")."""
    s = later - earlier
    sign, a = ("−" if s < 0 else "+"), abs(s)
    if a < 120:
        return f"{sign}{a} s"
    if a < 7200:
        return f"{sign}{round(a / 60)} min"
    if a < 172800:
        return f"{sign}{round(a / 3600)} h"
    return f"{sign}{round(a / 86400)} d"


@dataclass(frozen=True)
class Row:
    """One check: its name, status, what it establishes, and the verifier's sentence."""

    name: str
    status: Status
    meaning: str
    detail: str


@dataclass(frozen=True)
class Evidence:
    title: str
    made: str
    verdict: str
    status: Status  # OK: valid; NOT_CHECKED: valid as far as checked; FAILED: not valid
    summary: tuple[str, ...]
    unchecked: tuple[str, ...]
    document: tuple[tuple[str, str], ...]
    entry: tuple[tuple[str, str], ...]
    events: tuple[Event, ...]
    checks: tuple[Row, ...]
    trusted: tuple[str, ...]
    receipt: tuple[tuple[str, str], ...]
    again: str


def anchor_kind(check: Check, anchors: Sequence[Anchor]) -> str:
    for i, a in enumerate(anchors):
        if check.name == f"anchor {i + 1} ({a.type[:40]})":
            return a.type
    return ""


ANCHOR_FAILED = "This anchor does not hold: it is no evidence of the time of this tree head."


def why_not(check: Check, kind: str) -> str:
    """What a failed check means for the receipt (the page's words)."""
    return ANCHOR_FAILED if kind else WHY_NOT.get(check.name, "A check failed.")


def meaning(check: Check, kind: str) -> str:
    """What a check establishes (the page's words), what its failure means, or that an unchecked
    anchor proves nothing here."""
    if check.status is Status.FAILED:
        return why_not(check, kind)
    if check.status is Status.NOT_CHECKED:
        return "not checked: it proves nothing here" if check.name.startswith("anchor") else ""
    if kind == "local":
        return "the service's own chain: the order of its tree heads, on its word (not independent evidence)"
    if check.name.startswith("anchor"):
        return "independent evidence that the tree existed then"
    return MEANING.get(check.name, "")


def not_checked(check: Check, kind: str) -> str:
    """A few words on a check that was not made, for the verdict."""
    if check.name == "document":
        return "the document (none was given)"
    if check.name == "signed time":
        return "the signed time (no clock key was given)"
    if check.name == "witnesses":
        return "the witnesses (the policy asks for none)"
    why = {
        "evm": "its chain was not asked (notar verify --online asks it)",
        "rfc3161": "no time-stamp authority's certificate was given (--tsa-ca)",
        "local": "not checked",
    }.get(kind, "a kind this verifier does not know")
    return f"{check.name}: {why}"


def _anchor_event(k: int, anchor: Anchor, check: Check) -> Event:
    kind = KINDS.get(anchor.type, anchor.type[:20])
    if check.time is not None:
        return Event(f"Anchor {k + 1}", kind, check.time, check.status)
    if anchor.type == "rfc3161" and check.status is Status.NOT_CHECKED:
        try:
            claimed = read_token(base64.b64decode(str(anchor.fields().get("token", "")), validate=True))
            return Event(f"Anchor {k + 1}", kind, int(claimed.gen_time.timestamp()), check.status, True)
        except ValueError:
            pass
    return Event(f"Anchor {k + 1}", kind, None, check.status)


def timeline(result: ReceiptResult) -> tuple[Event, ...]:
    """The notarization, the signed time, then each anchor in the order of its time (those without
    one last, in the receipt's order), as the page's timelineEvents."""
    signed = result.check("signed time")
    proved = all(c.ok for c in result.checks if c.name in ("entry", "inclusion"))
    events = [
        Event("Notarized", f"entry {result.index}", None, Status.OK if proved else Status.FAILED),
        Event("Signed time", "the service's clock", result.signed_time,
              signed.status if signed else Status.NOT_CHECKED),
    ]  # fmt: skip
    anchors = []
    for k, anchor in enumerate(result.anchors):
        name = f"anchor {k + 1} ({anchor.type[:40]})"
        check = result.check(name)
        if check is not None:
            anchors.append((k, _anchor_event(k, anchor, check)))
    anchors.sort(key=lambda a: (a[1].time is None, a[1].time or 0, a[0]))
    return (*events, *(e for _, e in anchors))


def _verdict(result: ReceiptResult, document: Path | None) -> tuple[str, Status, list[str]]:
    receipt = result.receipt
    if result.failed or receipt is None:
        failed = result.failed[0]
        why = why_not(failed, anchor_kind(failed, result.anchors))
        return "NOT VALID", Status.FAILED, [why, f"The check “{failed.name}” failed: {failed.detail}."]
    what = f"The document “{document.name}” is exactly the one notarized by this receipt." if document else (
        "The receipt is genuine; no document was given, so it proves the fingerprint below, not a file.")
    said = [
        what,
        f"Its fingerprint was notarized by “{receipt.subject}” as entry {receipt.index} of the log "
        f"{receipt.origin}, in a tree of {receipt.tree_size:,} entries signed by the trusted key "
        f"{result.log_key}.",
    ]
    if result.signed_time is not None:
        what = "document" if document else "notarized data"
        said.append(f"The service's clock vouched for that tree on {human_time(result.signed_time)}: the "
                    f"{what} existed then at the latest.")  # fmt: skip
    if result.unchecked:
        said.append("Nothing failed, but these were not checked:")
        return "VALID AS FAR AS CHECKED", Status.NOT_CHECKED, said
    return "VALID: EVERY CHECK HOLDS", Status.OK, said


def _key_kind(key: str) -> str:
    logs, clocks = split_keys([key])
    if logs:
        return "log key"
    return "clock key" if clocks[0].name.endswith("/clock") else "witness key"


def _notar_version() -> str:
    try:
        return version("notar")
    except PackageNotFoundError:
        return "unknown version"


def gather(
    result: ReceiptResult,
    *,
    receipt_file: Path,
    receipt_bytes: bytes,
    document: Path | None,
    keys: Sequence[str],
    tsa_cas: Sequence[x509.Certificate],
    notes: Sequence[str] = (),
    now: datetime | None = None,
) -> Evidence:
    """The report's content for `result`, the verdict of `notar verify` on `receipt_file` (and
    `document`) with `keys` and `tsa_cas`."""
    when = now or datetime.now(UTC)
    verdict, status, summary = _verdict(result, document)
    kinds = [anchor_kind(c, result.anchors) for c in result.checks]
    receipt = result.receipt
    doc_facts = [("Name", document.name if document else "not given: only the receipt was checked")]
    if document is not None:
        doc_facts.append(("Size", f"{document.stat().st_size:,} bytes"))
    if receipt is not None:
        doc_facts.append(("Fingerprint", str(receipt.digest)))
    entry: list[tuple[str, str]] = []
    if receipt is not None:
        clock = result.check("signed time")
        untimed = "no valid clock signature"
        if clock is not None and not clock.checked:
            untimed = "not checked (no clock key given)"
        signed = f"{human_time(result.signed_time)}" if result.signed_time is not None else untimed
        entry = [
            ("Log", receipt.origin), ("Entry number", f"{receipt.index:,}"),
            ("Tree size", f"{receipt.tree_size:,} entries"), ("Notarized by", receipt.subject),
            ("Signed by", result.log_key or "no trusted log key"), ("Signed time", signed),
        ]  # fmt: skip
    trusted = [f"{_key_kind(k)}: {k}" for k in keys]
    trusted += [f"time-stamp authority's CA: {c.subject.rfc4514_string()}" for c in tsa_cas] or [
        "no time-stamp authority's CA"
    ]
    trusted += [f"note: {n}" for n in notes]
    pairs = list(zip(result.checks, kinds, strict=True))
    rows = tuple(Row(c.name, c.status, meaning(c, k), c.detail) for c, k in pairs)
    doc_arg = f" {document.name}" if document else ""
    ca_arg = " --tsa-ca <the CA above>" if tsa_cas else ""
    return Evidence(
        title=f"Notarized document: {document.name}" if document else "Notarized fingerprint",
        made=f"Checked on {human_time(int(when.timestamp()))} by notar verify (notar {_notar_version()}), "
        "offline, trusting only what is listed at the end.",
        verdict=verdict,
        status=status,
        summary=tuple(summary),
        unchecked=tuple(not_checked(c, k) for c, k in pairs if not c.checked),
        document=tuple(doc_facts),
        entry=tuple(entry),
        events=timeline(result) if receipt is not None else (),
        checks=rows,
        trusted=tuple(trusted),
        receipt=(
            ("File", receipt_file.name),
            ("SHA-256", hashlib.sha256(receipt_bytes).hexdigest()),
            ("Size", f"{len(receipt_bytes):,} bytes"),
        ),
        again=f"notar verify {receipt_file.name}{doc_arg} --key <each key above>{ca_arg}",
    )
