"""What every service shares: a request's digests, an entry's place in the log, a notarization a
look-up finds, what ingest, verify and the SCITT routes ask of the anchor (`Submitter`, `Lookup`,
`Registrations`), and the rule for tenant names.

Only merkle, storage and the standard library are imported here: ingest, verify, common and the
anchor all depend on this module, and it depends on none of them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import repeat
from typing import Protocol, overload

from merkle import compact
from merkle.checkpoint import parse_checkpoint
from merkle.digests import SALT_SIZE, Digest, parse_digest
from merkle.hashing import leaf_hashes
from merkle.note import parse_note
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
    `merkle.Proven`); not to be changed once made. One caller's entries come as one
    `SequencedGroup`, which makes these only when read one by one."""

    index: int
    entry: bytes
    salt: bytes
    tree_size: int
    inclusion: Sequence[bytes]
    checkpoint: str


class SequencedGroup(Sequence[Sequenced]):
    """What the sequencer answers one caller: its entries, in the caller's order, placed at
    `indices` of the tree of `tree_size` that `checkpoint` signs, their `salts` (16 bytes each,
    concatenated; empty for pre-made entries, which have none) and the proof material it asked
    for: each entry's inclusion proof (`proofs`), or the nodes of its compact part (`nodes`,
    merkle.compact). Whichever was not made is derived from the other when first asked for:
    the sequencer makes only what the answer needs, not an object and a proof per entry.

    As a sequence it gives each entry's `Sequenced`, made when read."""

    __slots__ = ("_nodes", "_proofs", "checkpoint", "entries", "indices", "salts", "tree_size")

    def __init__(
        self,
        *,
        indices: list[int],
        entries: list[bytes],
        salts: bytes,
        tree_size: int,
        checkpoint: str,
        proofs: list[list[bytes]] | None = None,
        nodes: list[bytes] | None = None,
    ) -> None:
        if proofs is None and nodes is None:
            raise ValueError("a sequenced group needs its proofs or its nodes")
        if len(indices) != len(entries) or (salts and len(salts) != SALT_SIZE * len(entries)):
            raise ValueError("a sequenced group's indices, entries and salts must match")
        self.indices, self.entries, self.salts = indices, entries, salts
        self.tree_size, self.checkpoint = tree_size, checkpoint
        self._proofs, self._nodes = proofs, nodes

    @property
    def has_proofs(self) -> bool:
        """Whether each entry's proof is at hand (made by the sequencer, or derived already)."""
        return self._proofs is not None

    def proofs(self) -> list[list[bytes]]:
        """Each entry's inclusion proof (RFC 9162), in order; from the nodes when not made."""
        if self._proofs is None:
            assert self._nodes is not None
            root = parse_checkpoint(parse_note(self.checkpoint).text).root
            leaves = leaf_hashes(self.entries)
            self._proofs = compact.node_proofs(self.indices, self.tree_size, leaves, self._nodes, root)
        return self._proofs

    def nodes(self) -> list[bytes]:
        """The nodes of this group's compact part (merkle.compact); from the proofs when not made."""
        if self._nodes is None:
            self._nodes = compact.batch_nodes(self.indices, self.tree_size, self.proofs())
        return self._nodes

    def salt(self, k: int) -> bytes:
        return self.salts[SALT_SIZE * k : SALT_SIZE * k + SALT_SIZE]

    def __len__(self) -> int:
        return len(self.indices)

    def __iter__(self) -> Iterator[Sequenced]:
        salts = self.salts
        each = [salts[i : i + SALT_SIZE] for i in range(0, len(salts), SALT_SIZE)] if salts else repeat(b"")
        size, note = repeat(self.tree_size), repeat(self.checkpoint)
        return map(Sequenced, self.indices, self.entries, each, size, self.proofs(), note)

    @overload
    def __getitem__(self, i: int) -> Sequenced: ...
    @overload
    def __getitem__(self, i: slice) -> Sequence[Sequenced]: ...
    def __getitem__(self, i: int | slice) -> Sequenced | Sequence[Sequenced]:
        if isinstance(i, slice):
            return [self[k] for k in range(len(self))[i]]
        k = range(len(self))[i]
        proof = self.proofs()[k]
        return Sequenced(
            self.indices[k], self.entries[k], self.salt(k), self.tree_size, proof, self.checkpoint
        )


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
