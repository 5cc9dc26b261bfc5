"""Chain backends of the committer, one file per kind (SPEC §4): local, evm, rfc3161.

Each backend turns a published checkpoint into one anchor record. ``anchor`` returns only a
record that is final and verifies; anything else raises ``AnchorError`` (the committer retries
later, with backoff) — never a record that might not hold.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from merkle.checkpoint import Checkpoint, parse_checkpoint
from merkle.note import parse_note
from storage.errors import NotarError


class AnchorError(NotarError):
    """An anchor could not be made now (backend down, garbage answer, out of funds...)."""


@dataclass(frozen=True)
class Target:
    """A signed checkpoint to anchor: the whole note, its body and the parsed checkpoint."""

    note: str
    body: str
    checkpoint: Checkpoint

    @classmethod
    def from_note(cls, note: str) -> Target:
        body = parse_note(note).text
        return cls(note, body, parse_checkpoint(body))

    @property
    def size(self) -> int:
        return self.checkpoint.size


@dataclass(frozen=True)
class Anchored:
    """A final record, and the checkpoint it commits to (a backend may finish an earlier one)."""

    target: Target
    record: dict[str, Any]


class Backend(Protocol):
    kind: str

    async def anchor(self, target: Target) -> Anchored:
        """Anchor ``target`` (or first finish an earlier anchoring still in flight)."""
        ...

    async def close(self) -> None: ...
