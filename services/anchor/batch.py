"""A sequencer batch's data and the pure steps that prepare it: the random placement of its
entries, the entries made from each caller's group, and the index rows when it holds pre-made
(SCITT) entries. No I/O: the sequencer draws the randomness and writes what these return."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from opentelemetry.trace import SpanContext

from merkle.digests import Digest, entries_of
from merkle.digests import multihashes as digest_multihashes
from services.anchor import state
from services.anchor.tenant_index import TenantIndex
from services.common.telemetry import current_span_context
from services.model import Digests, Sequenced


@dataclass
class Group:
    tenant: str
    digests: Sequence[Digest]
    future: asyncio.Future[list[Sequenced]]
    arrived: float
    span: SpanContext = field(default_factory=current_span_context)  # the submitter's, for the batch span
    made: Sequence[bytes] | None = None  # pre-made entries (`submit_entries`), in place of digests

    @property
    def size(self) -> int:
        return len(self.digests) if self.made is None else len(self.made)


@dataclass
class Batch:
    """A batch ready for its durable write: `placed`, its entries in index order from `first`;
    and in the callers' order, each entry's place in the batch (`rank`), index, entry and salt."""

    first: int
    placed: list[bytes]
    rank: list[int]
    indices: list[int]
    entries: list[bytes]
    salts: list[bytes]
    puts: dict[bytes, bytes]
    timestamp: int



def placement(words: list[int], n: int) -> tuple[list[int], list[int]]:
    """The placement of `n` entries: a Fisher-Yates shuffle driven by random 8-byte `words` (the
    modulo's bias is below n / 2^64). order[j] is the callers' position of the entry placed j-th;
    rank is its inverse. Everything per entry stays in the callers' order but the bundle:
    gathering rows into index order cost more than the rows."""
    order = list(range(n))
    for i in range(n - 1, 0, -1):
        other = words[i] % (i + 1)
        order[i], order[other] = order[other], order[i]
    rank = [0] * n
    deque(map(rank.__setitem__, order, range(n)), maxlen=0)  # rank[order[j]] = j, looped in C
    return order, rank


@dataclass(frozen=True)
class Keyed:
    """What a batch's digests are known by, each computed once a batch (the repeats cap and the
    tenant index both need them): in the groups' order, every digest's tenant, multihash and
    tenant-index name (`TenantIndex.names`: 16 bytes each, concatenated). Pre-made entries have
    none of them."""

    tenants: list[str]
    multihashes: list[bytes]
    names: bytes


def keyed(rows: TenantIndex, groups: Sequence[Group]) -> Keyed:
    """The `Keyed` of `groups`' digests; ValueError on a tenant name that is not one."""
    tenants: list[str] = []
    for g in groups:
        tenants += [g.tenant] * len(g.digests)
    multihashes: list[bytes] = []
    for g in groups:  # a request's Digests (services.model) has them without a Digest per digest
        d = g.digests
        multihashes += d.multihashes() if isinstance(d, Digests) else digest_multihashes(d)
    return Keyed(tenants, multihashes, rows.names(tenants, multihashes))


def group_entries(
    groups: Sequence[Group], salts: list[bytes], multihashes: list[bytes]
) -> tuple[list[bytes], list[int]]:
    """The entries of a batch in the callers' order, made per group (a batch mixes tenants, a
    group has one) from its digests' `multihashes` (`Keyed`); the callers' positions of pre-made
    entries."""
    entries: list[bytes] = []
    made: list[int] = []
    at = mine = 0
    for g in groups:
        if g.made is not None:
            made += range(at, at + len(g.made))
            entries += g.made
            at += len(g.made)
            continue
        k = len(g.digests)
        entries += entries_of(multihashes[mine : mine + k], salts[at : at + k], g.tenant)
        at += k
        mine += k
    return entries, made


def rows_with_made(
    rows: TenantIndex,
    made: list[int],
    entries: list[bytes],
    digests: Keyed,
    indices: list[int],
    salts: list[bytes],
) -> dict[bytes, bytes]:
    """A batch's rows when it holds pre-made entries: the tenant rows of the others, and each
    pre-made entry's (lowest) index; their salts, drawn with the others', are dropped."""
    skip = set(made)
    others = [i for i in range(len(entries)) if i not in skip]
    kept_indices, kept_salts = [indices[i] for i in others], [salts[i] for i in others]
    puts = rows.rows(digests.tenants, digests.multihashes, kept_indices, kept_salts, names=digests.names)
    for i in sorted(made, key=indices.__getitem__):
        puts.setdefault(state.entry_key(entries[i]), state.u64(indices[i]))
        salts[i] = b""
    return puts
