"""The C2SP tlog-witness wire format, for witnesses and for the logs that call them (pure).

``POST <prefix>/add-checkpoint`` carries ``old <size>\\n``, up to 63 base64 consistency-proof lines,
an empty line and the signed checkpoint; a witness answers 200 with its cosignature lines, 409
with its latest size (``text/x.tlog.size``, ``<size>\\n``) when ``old`` is not that size, 422 when
the checkpoint is not consistent with what it cosigned (a bad proof, or another root for its own
size), and 400/403/404 for a malformed request, a bad log signature, an unknown origin.
``GET <prefix>/<origin hash>/checkpoint`` serves the latest checkpoint it cosigned.
Malformed input raises ``ValueError``.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from merkle.checkpoint import MAX_TREE_SIZE, Checkpoint, parse_checkpoint
from merkle.note import (
    MAX_SIGNATURES,
    Note,
    NoteVerifier,
    Signature,
    b64decode_canonical,
    parse_note,
    verify_note,
)

MAX_PROOF_LINES = 63
SIZE_CONTENT_TYPE = "text/x.tlog.size"
_DECIMAL = re.compile(r"0|[1-9][0-9]{0,18}")


@dataclass(frozen=True)
class AddCheckpoint:
    """An add-checkpoint request: the size the client believes the witness holds, the RFC 9162
    consistency proof from it, and the signed checkpoint (``note``, parsed as ``checkpoint``)."""

    old_size: int
    proof: tuple[bytes, ...]
    note: str
    checkpoint: Checkpoint

    def body(self) -> bytes:
        return add_checkpoint_body(self.old_size, self.proof, self.note)


def add_checkpoint_body(old_size: int, proof: Sequence[bytes], note: str) -> bytes:
    """The request body of add-checkpoint; ``ValueError`` for a size out of range, more than 63
    proof hashes, a hash that is not 32 bytes or a note that is not a signed checkpoint."""
    if isinstance(old_size, bool) or not isinstance(old_size, int) or not 0 <= old_size <= MAX_TREE_SIZE:
        raise ValueError(f"old size {old_size!r} is out of range")
    if len(proof) > MAX_PROOF_LINES or any(not isinstance(h, bytes) or len(h) != 32 for h in proof):
        raise ValueError(f"a consistency proof is at most {MAX_PROOF_LINES} hashes of 32 bytes")
    parse_checkpoint(parse_note(note).text)
    lines = [f"old {old_size}\n", *(base64.b64encode(h).decode("ascii") + "\n" for h in proof)]
    return ("".join(lines) + "\n" + note).encode("utf-8")


def parse_add_checkpoint(body: bytes | str) -> AddCheckpoint:
    """An add-checkpoint body, parsed strictly: ``ValueError`` (a 400) if it is not exactly the
    sequence the spec describes or its checkpoint is not a well-formed signed checkpoint.
    Nothing is verified here: not the signatures, not ``old <= size``, not the proof."""
    text = _text(body)
    head, sep, note = text.partition("\n\n")
    if not sep:
        raise ValueError("the body has no empty line before the checkpoint")
    first, *proof_lines = head.split("\n")
    word, space, size = first.partition(" ")
    if word != "old" or not space or not _DECIMAL.fullmatch(size) or int(size) > MAX_TREE_SIZE:
        raise ValueError("the first line is not `old <size>` with a decimal size without leading zeros")
    if len(proof_lines) > MAX_PROOF_LINES:
        raise ValueError(f"more than {MAX_PROOF_LINES} consistency proof lines")
    proof = []
    for line in proof_lines:
        node = b64decode_canonical(line)
        if len(node) != 32:
            raise ValueError("a consistency proof line is not the base64 of 32 bytes")
        proof.append(node)
    checkpoint = parse_checkpoint(parse_note(note).text)
    return AddCheckpoint(int(size), tuple(proof), note, checkpoint)


def format_size(size: int) -> bytes:
    """The body of a 409 answer: the size in decimal and a newline."""
    return f"{size}\n".encode("ascii")


def parse_size(body: bytes | str) -> int:
    """The size in a 409 answer (``text/x.tlog.size``); ``ValueError`` unless ``<decimal>\\n``."""
    text = _text(body)
    if not text.endswith("\n") or not _DECIMAL.fullmatch(text[:-1]) or int(text[:-1]) > MAX_TREE_SIZE:
        raise ValueError("a tlog size answer is a decimal without leading zeros and a newline")
    return int(text[:-1])


def parse_cosignatures(body: bytes | str) -> tuple[Signature, ...]:
    """The signature lines of a 200 answer (one or more ``— name base64`` lines, each ending in a
    newline); ``ValueError`` otherwise. Nothing is verified here."""
    text = _text(body)
    if not text.endswith("\n") or text.startswith("\n") or "\n\n" in text:
        raise ValueError("a cosignature answer is one or more signature lines, each ending in a newline")
    # A one-line note with these lines parses them exactly as the signed-note spec says.
    return parse_note("x\n\n" + text).signatures


def merge_cosignatures(note: str, body: bytes | str, witnesses: Iterable[NoteVerifier]) -> str:
    """``note`` with the cosignatures of a 200 answer that trusted ``witnesses`` made over it: the
    spec's "concatenate and verify, then move the valid signatures". Lines of unknown keys are
    ignored; a trusted key's line that does not verify raises ``ValueError`` (the answer is
    refused whole); a line of a key already on the note replaces it."""
    parsed = parse_note(note)
    answer = parse_cosignatures(body)
    opened = verify_note(Note(parsed.text, answer), witnesses)
    if opened.invalid:
        bad = ", ".join(f"{s.name}+{s.key_id:08x}" for s in opened.invalid)
        raise ValueError(f"the witness answer carries cosignatures that do not verify: {bad}")
    new = {(s.name, s.key_id) for s in opened.verified}
    signatures = [s for s in parsed.signatures if (s.name, s.key_id) not in new] + list(opened.verified)
    if len(signatures) > MAX_SIGNATURES:
        raise ValueError(f"a note carries at most {MAX_SIGNATURES} signatures")
    return parsed.text + "\n" + "".join(s.line() for s in signatures)


def origin_hash(origin: str) -> str:
    """The lowercase hex SHA-256 of an origin: its path segment on the monitoring prefix."""
    return hashlib.sha256(origin.encode("utf-8")).hexdigest()


def checkpoint_path(origin: str) -> str:
    """``/<origin hash>/checkpoint``, under the witness's monitoring prefix."""
    return f"/{origin_hash(origin)}/checkpoint"


class Outcome(StrEnum):
    """What an add-checkpoint answer means to the log that sent it."""

    COSIGNED = "cosigned"  # 200: the cosignature lines
    RESYNC = "resync"  # 409 with the witness's size: send again with the proof from that size
    INCONSISTENT = "inconsistent"  # the witness holds a view this checkpoint contradicts
    REFUSED = "refused"  # 400, 403, 404 or anything else: a request or configuration problem


@dataclass(frozen=True)
class WitnessAnswer:
    """An add-checkpoint answer read by ``read_answer``: ``size`` for 409, ``cosignatures`` for 200."""

    outcome: Outcome
    status: int
    size: int | None = None
    cosignatures: tuple[Signature, ...] = ()


def read_answer(request: AddCheckpoint, status: int, content_type: str | None, body: bytes) -> WitnessAnswer:
    """Classify the answer to ``request``. A 422 is INCONSISTENT: the witness refused a proof or
    holds another root for the checkpoint's size (tlog-witness since 2026-07; a log that built its
    proof right is looking at a fork). A 409 whose size is the checkpoint's own, sent with ``old``
    equal to that size, is INCONSISTENT too: witnesses of tlog-witness v1.0.0 answer another root
    for their size that way. Another 409 is RESYNC with the witness's size. ``ValueError`` for a
    200 or 409 whose body is malformed."""
    if status == 200:
        return WitnessAnswer(Outcome.COSIGNED, status, cosignatures=parse_cosignatures(body))
    if status == 409:
        media = (content_type or "").split(";", 1)[0].strip().lower()
        if media != SIZE_CONTENT_TYPE:
            raise ValueError(f"a 409 answer must be {SIZE_CONTENT_TYPE}, not {content_type!r}")
        size = parse_size(body)
        same = size == request.checkpoint.size == request.old_size
        return WitnessAnswer(Outcome.INCONSISTENT if same else Outcome.RESYNC, status, size=size)
    if status == 422:
        return WitnessAnswer(Outcome.INCONSISTENT, status)
    return WitnessAnswer(Outcome.REFUSED, status)


def _text(body: bytes | str) -> str:
    if isinstance(body, str):
        return body
    try:
        return bytes(body).decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("the body is not valid UTF-8") from None
