"""What every service shares: an item to notarize, an entry's place in the log, the two things
ingest and verify ask of the anchor (`Submitter`, `Lookup`), and the rule for tenant names.

Only merkle, storage and the standard library are imported here: ingest, verify, common and the
anchor all depend on this module, and it depends on none of them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from merkle.digests import Digest
from storage.errors import NotarError

_TENANT_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def check_tenant(tenant: str) -> str:
    if not isinstance(tenant, str) or not _TENANT_RE.fullmatch(tenant):
        raise ValueError(
            f"tenant name {tenant!r} must be 1-64 of A-Z a-z 0-9 . _ - starting with a letter or digit"
        )
    return tenant


@dataclass(frozen=True)
class Item:
    tenant: str
    digest: Digest
    salted: bool = True


@dataclass(frozen=True)
class Sequenced:
    """An entry's place in the log, proven against the signed checkpoint of its batch."""

    index: int
    entry: bytes
    salt: bytes
    tree_size: int
    inclusion: list[bytes]
    checkpoint: str


class Submitter(Protocol):
    async def submit(self, items: Sequence[Item]) -> list[Sequenced]: ...

    def refusal(self, count: int = 1) -> NotarError | None:
        """What `submit` of `count` entries would surely raise right now (cheap), else None."""
        ...


class Lookup(Protocol):
    """The tenant-private index, as ingest and verify reach it."""

    async def lookup(self, tenant: str, digest: Digest) -> list[tuple[int, bytes]]: ...

    async def forget(self, tenant: str, digest: Digest) -> int:
        """Erase every notarization of `digest` by `tenant` from the index; how many (0: none)."""
        ...
