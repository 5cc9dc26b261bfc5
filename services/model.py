"""What every service shares: a request's digests, an entry's place in the log, a notarization a
look-up finds, what ingest, verify and the SCITT routes ask of the anchor (`Submitter`, `Lookup`,
`Registrations`), and the rule for tenant names.

Only merkle, storage and the standard library are imported here: ingest, verify, common and the
anchor all depend on this module, and it depends on none of them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, overload

from merkle.digests import Digest, parse_digest
from storage.errors import NotarError

_TENANT_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_PREFIXES = frozenset({"blake3:", "sha256:"})
_DIGEST_TEXT = len("blake3:") + 64
_BULK = 8  # digests from which checking them in bulk beats parse_digest one by one
_MULTIHASH_PREFIX = {name: Digest(name, bytes(32)).multihash[:2] for name in ("blake3", "sha256")}


def check_tenant(tenant: str) -> str:
    if not isinstance(tenant, str) or not _TENANT_RE.fullmatch(tenant):
        raise ValueError(
            f"tenant name {tenant!r} must be 1-64 of A-Z a-z 0-9 . _ - starting with a letter or digit"
        )
    return tenant


class BadDigest(ValueError):
    """Digest `position` of a request is not a canonical digest (SPEC §1)."""

    def __init__(self, position: int, reason: str) -> None:
        super().__init__(f"digest {position}: {reason}")
        self.position = position


@dataclass(frozen=True)
class Digests(Sequence[Digest]):
    """One request's digests, checked once: their canonical texts (`blake3:<hex>` exactly as
    `str(Digest)` writes them, so receipts can carry them as they are) and their 32-byte values
    concatenated. Build it with `parse`. As a sequence of `Digest` it makes each one when read
    (`digests()` makes them all); `multihashes()` gives what the sequencer needs of them without
    a `Digest` per digest (~1.5 µs each: a request of 10,000 made 10,000 objects to read two
    fields)."""

    texts: Sequence[str]
    values: bytes

    @classmethod
    def parse(cls, raw: Sequence[object]) -> Digests:
        """`raw`'s digests if every one is canonical text (SPEC §1), else BadDigest naming the
        first that is not. Checked in bulk with C loops: all strings of 71 characters, known
        prefixes, and the hex decoded at once re-encoding to itself (so lowercase, no spaces);
        parse_digest per digest was 18% of the event loop under bulk load."""
        if len(raw) >= _BULK:
            values = _bulk_values(raw)
            if values is not None:
                return cls(raw, values)  # type: ignore[arg-type]  # _bulk_values: all str
        parts = []
        for i, text in enumerate(raw):
            try:
                parts.append(parse_digest(text).value)
            except ValueError as e:
                raise BadDigest(i, str(e)) from None
        return cls(raw, b"".join(parts))  # type: ignore[arg-type]  # parse_digest: all str

    def __len__(self) -> int:
        return len(self.texts)

    @overload
    def __getitem__(self, i: int) -> Digest: ...
    @overload
    def __getitem__(self, i: slice) -> Sequence[Digest]: ...
    def __getitem__(self, i: int | slice) -> Digest | Sequence[Digest]:
        if isinstance(i, slice):
            return self.digests()[i]
        k = range(len(self.texts))[i]
        return Digest(self.texts[k][:6], self.values[32 * k : 32 * k + 32])

    def multihashes(self) -> list[bytes]:
        """Each digest's multihash (`Digest.multihash`), in order, in one pass."""
        values, prefix = self.values, _MULTIHASH_PREFIX
        return [prefix[t[:6]] + values[32 * i : 32 * i + 32] for i, t in enumerate(self.texts)]

    def digests(self) -> list[Digest]:
        values = self.values
        return [Digest(t[:6], values[32 * i : 32 * i + 32]) for i, t in enumerate(self.texts)]


def _bulk_values(raw: Sequence[object]) -> bytes | None:
    if set(map(type, raw)) != {str} or set(map(len, raw)) != {_DIGEST_TEXT}:  # type: ignore[arg-type]
        return None
    texts: Sequence[str] = raw  # type: ignore[assignment]
    if not {d[:7] for d in texts} <= _PREFIXES:
        return None
    hexes = "".join([d[7:] for d in texts])
    try:
        values = bytes.fromhex(hexes)
    except ValueError:
        return None
    return values if values.hex() == hexes else None


@dataclass(slots=True)
class Sequenced:
    """An entry's place in the log, proven against the signed checkpoint of its batch (a
    `merkle.Proven`); not to be changed once made. Not frozen: the sequencer makes one per entry,
    and a frozen dataclass cost ~2 µs of its ~9 µs per entry (slots: one object, not two)."""

    index: int
    entry: bytes
    salt: bytes
    tree_size: int
    inclusion: Sequence[bytes]
    checkpoint: str


class Submitter(Protocol):
    async def submit(self, tenant: str, digests: Digests, *, compact: bool = False) -> bytes:
        """Notarize `digests` for `tenant`; the finished public answer `{"receipts": [...]}`,
        one receipt per digest in order, once they are durable and in a signed checkpoint; with
        `compact`, the compact answer of the same receipts instead (merkle.compact)."""
        ...

    def refusal(self, count: int = 1) -> NotarError | None:
        """What `submit` of `count` entries would surely raise right now (cheap), else None."""
        ...


@dataclass(frozen=True, slots=True)
class Found:
    """One notarization as the tenant index finds it: its index and salt in its log, and
    `signed_at`, the time the log's clock signed the checkpoint of the batch that holds it (the
    cosignature's, seconds since the epoch), which orders notarizations across shards. None when
    the log kept no such time (batches written before the anchors recorded them)."""

    index: int
    salt: bytes
    signed_at: int | None = None


class Lookup(Protocol):
    """The tenant-private index, as ingest and verify reach it."""

    async def lookup(
        self, tenant: str, digest: Digest, *, limit: int | None = None, after: int | None = None
    ) -> list[Found]:
        """`tenant`'s notarizations of `digest`, earliest first: those after index `after` when
        given, at most `limit` of them (the index reads no more rows than that)."""
        ...

    async def forget(self, tenant: str, digest: Digest) -> int:
        """Erase every notarization of `digest` by `tenant` from the index; how many (0: none)."""
        ...


class Registrations(Protocol):
    """The anchor's SCITT registrations (SPEC §12), as the SCITT routes reach them."""

    async def register(self, entry: bytes, wait_s: float) -> bytes | None:
        """The COSE receipt of the statement whose log entry is `entry` (type 0x03, 33 bytes),
        registering it unless it was (then its first receipt); None when it is not sequenced
        within `wait_s` seconds (it goes on: `receipt` tells later)."""
        ...

    async def receipt(self, entry: bytes) -> bytes | None:
        """The receipt of a registered entry; None while it is being sequenced; NotFoundError."""
        ...

    def refusal(self, count: int = 1) -> NotarError | None:
        """What `register` would surely raise right now (cheap), else None."""
        ...
