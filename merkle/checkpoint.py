"""C2SP tlog-checkpoint bodies, and notar's signed checkpoints (SPEC §3).

A checkpoint body is ``origin\\nsize\\nbase64(root)\\n`` followed by optional non-empty extension
lines. Parsing is strict (``ValueError``): decimal size without leading zeros, canonical base64 of
exactly 32 bytes, non-empty origin, the expected origin when one is given.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from merkle.note import (
    NoteSigner,
    NoteVerifier,
    OpenedNote,
    b64decode_canonical,
    check_note_text,
    parse_note,
    sign_note,
    verify_note,
)

MAX_TREE_SIZE = 2**63 - 1  # Go's tlog and torchwood parse sizes as int64
_DECIMAL = re.compile(r"0|[1-9][0-9]{0,18}")


@dataclass(frozen=True)
class Checkpoint:
    """A tree head: origin, tree size, 32-byte RFC 9162 root hash and extension lines."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "extensions", tuple(self.extensions))
        for line in (self.origin, *self.extensions):
            if not isinstance(line, str) or not line or "\n" in line:
                raise ValueError(f"checkpoint line {line!r} is empty or not one line")
            check_note_text(line + "\n")
        if isinstance(self.size, bool) or not isinstance(self.size, int):
            raise ValueError(f"checkpoint size {self.size!r} is not an int")
        if not 0 <= self.size <= MAX_TREE_SIZE:
            raise ValueError(f"checkpoint size {self.size} is out of range")
        if not isinstance(self.root, bytes) or len(self.root) != 32:
            raise ValueError("checkpoint root must be 32 bytes")

    def format(self) -> str:
        """The note text: ``origin\\nsize\\nbase64(root)\\n`` and one line per extension."""
        lines = [self.origin, str(self.size), base64.b64encode(self.root).decode("ascii")]
        return "".join(line + "\n" for line in (*lines, *self.extensions))


def parse_checkpoint(text: str, *, origin: str | None = None) -> Checkpoint:
    """Parse a checkpoint body strictly; ``ValueError`` if malformed or of another origin."""
    check_note_text(text)
    lines = text[:-1].split("\n")
    if len(lines) < 3:
        raise ValueError("a checkpoint has at least three lines: origin, size, root hash")
    found, size, root, *extensions = lines
    if not found:
        raise ValueError("checkpoint origin is empty")
    if origin is not None and found != origin:
        raise ValueError(f"checkpoint origin {found[:80]!r} is not the expected {origin!r}")
    if not _DECIMAL.fullmatch(size) or int(size) > MAX_TREE_SIZE:
        raise ValueError(f"checkpoint size {size[:30]!r} is not a decimal without leading zeros")
    if any(not line for line in extensions):
        raise ValueError("checkpoint extension lines must not be empty")
    return Checkpoint(found, int(size), _decode_root(root), tuple(extensions))


class TimestampingSigner(Protocol):
    """A signer whose signatures carry a time (e.g. ``CosignatureSigner``)."""

    def at(self, timestamp: int) -> NoteSigner:
        """A note signer signing as of ``timestamp`` (POSIX seconds)."""
        ...


class TimestampingVerifier(NoteVerifier, Protocol):
    """A verifier whose signatures carry a time (e.g. ``CosignatureVerifier``)."""

    def timestamp(self, signature: bytes) -> int:
        """The time inside a signature (POSIX seconds); ``ValueError`` if it has none."""
        ...


@dataclass(frozen=True)
class OpenedCheckpoint:
    """A signed checkpoint checked against trusted keys.

    ``log_key_name``: the name of a trusted log key whose signature verifies and whose name is the
    checkpoint's origin (SPEC §2: a log key signs only its own log), else None.
    ``cosigned_time``: the earliest time among verified clock cosignatures, else None;
    ``cosigned_by``: the name of the clock key that vouched for that time.
    ``note``: every signature, sorted into verified, unverified (unknown keys) and invalid.
    """

    checkpoint: Checkpoint
    log_key_name: str | None
    cosigned_time: int | None
    note: OpenedNote
    cosigned_by: str | None = None

    @property
    def ok(self) -> bool:
        """A trusted log key named after the origin signed it and no trusted key's signature fails."""
        return self.log_key_name is not None and not self.note.invalid


def sign_checkpoint(
    checkpoint: Checkpoint,
    log_signer: NoteSigner,
    clock_signer: TimestampingSigner,
    timestamp: int,
) -> str:
    """The checkpoint as a signed note: the log's signature, then the clock's as of ``timestamp``."""
    return sign_note(checkpoint.format(), [log_signer, clock_signer.at(timestamp)])


def open_checkpoint(
    note: str | bytes,
    *,
    origin: str,
    log_verifiers: Iterable[NoteVerifier],
    clock_verifiers: Iterable[TimestampingVerifier] = (),
) -> OpenedCheckpoint:
    """Parse a signed checkpoint of ``origin`` and check its signatures. Only a log key named
    ``origin`` can sign it (``log_key_name``); clock keys may have any name (by convention
    ``<origin>/clock``), ``cosigned_by`` says which one vouched for the time.

    Malformed notes or bodies and a wrong origin raise ``ValueError``; signatures that do not
    verify never raise, they show in the result: check ``ok`` before trusting the checkpoint.
    """
    parsed = parse_note(note)
    checkpoint = parse_checkpoint(parsed.text, origin=origin)
    logs, clocks = list(log_verifiers), list(clock_verifiers)
    opened = verify_note(parsed, [*logs, *clocks])
    log_keys = {(v.name, v.key_id) for v in logs if v.name == checkpoint.origin}
    log_key_name = next((s.name for s in opened.verified if (s.name, s.key_id) in log_keys), None)
    times = [
        (clock.timestamp(sig.signature), sig.name)
        for sig in opened.verified
        for clock in clocks
        if (clock.name, clock.key_id) == (sig.name, sig.key_id)
    ]
    first = min(times, default=None)
    return OpenedCheckpoint(
        checkpoint, log_key_name, first[0] if first else None, opened, first[1] if first else None
    )


def _decode_root(text: str) -> bytes:
    root = b64decode_canonical(text)
    if len(root) != 32:
        raise ValueError(f"checkpoint root hash is {len(root)} bytes, not 32")
    return root
