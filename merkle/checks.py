"""The verdict model shared by every verifier (SPEC §5): each check is `ok`, `failed` or
`not checked` (with the reason), and anchor verifiers answer in the same terms."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from merkle.aggregate import AnchorTarget
from merkle.receipt import Anchor


class Status(StrEnum):
    """A check's outcome; its value is the text of SPEC §5 and §6."""

    OK = "ok"
    FAILED = "failed"
    NOT_CHECKED = "not checked"


@dataclass(frozen=True)
class Check:
    """One named check: its status and a sentence saying what holds, what failed, or why it was
    not checked."""

    name: str
    status: Status
    detail: str
    time: int | None = None
    """What a verified anchor shows: the time (POSIX seconds) by which the tree existed."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", Status(self.status))

    @property
    def ok(self) -> bool:
        """True only for status ok."""
        return self.status is Status.OK

    @property
    def checked(self) -> bool:
        return self.status is not Status.NOT_CHECKED

    def to_obj(self) -> dict[str, Any]:
        """`{name, status, ok, detail}`, as `POST /v1/verify` answers each check."""
        return {"name": self.name, "status": self.status.value, "ok": self.ok, "detail": self.detail}


@dataclass(frozen=True)
class AnchorVerdict:
    """What an anchor verifier found: its status, a sentence, and the time (POSIX seconds) at which
    the anchor, once verified, shows the checkpoint existed, when it states one."""

    status: Status
    detail: str
    time: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", Status(self.status))


AnchorVerifier = Callable[[Anchor, AnchorTarget], AnchorVerdict]
"""Checks one anchor record of a known kind against what it must commit to. It may raise
ValueError for a malformed record: the anchor's check then fails, naming the reason. That the
record's stated `tree_size`, `root` and `aggregate` fit the target is checked before it is called."""
