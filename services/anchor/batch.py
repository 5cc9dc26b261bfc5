"""A sequencer batch's data and its preparation: the random placement of its entries, the entries
made from each caller's group, the index rows (with those of pre-made SCITT entries), the entry
bundle, all cut from one CSPRNG draw (`Preparer`). No I/O: the sequencer writes what these return,
and runs `Preparer.prepare_all` while the batch before is written (in a worker thread, or on its
event loop for a small batch)."""

from __future__ import annotations

import asyncio
import struct
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from opentelemetry.trace import SpanContext

from merkle.digests import ENTRY_SIZE, SALT_SIZE, Digest, entries_of
from merkle.digests import multihashes as digest_multihashes
from services.anchor import state
from services.anchor.repeats import RepeatCap, Tally
from services.anchor.sequenced import SequencerStopped
from services.anchor.signing_time import SigningTime
from services.anchor.tenant_index import TenantIndex, cut
from services.common.telemetry import current_span_context
from services.model import Digests, SequencedGroup
from storage.errors import NotarError, StorageError


@dataclass
class Group:
    tenant: str
    digests: Sequence[Digest]
    future: asyncio.Future[SequencedGroup]
    arrived: float
    span: SpanContext = field(default_factory=current_span_context)  # the submitter's, for the batch span
    made: Sequence[bytes] | None = None  # pre-made entries (`submit_entries`), in place of digests
    compact: bool = False  # its caller writes a compact answer: the nodes, not a proof per entry

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

    @property
    def end(self) -> int:
        """The tree size once this batch is written."""
        return self.first + len(self.placed)


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


_KEY_SIZE = 8  # bytes of randomness per entry that place it in its batch
_FRAME = ENTRY_SIZE.to_bytes(2, "big")  # an entry's length in a bundle (C2SP tlog-tiles)


class Preparer:
    """Makes a sequencer's batches, ready for their durable write (`prepare`). It holds no state
    of the log: the sequencer says where a batch starts, so that a batch made while the one
    before was being written can be made again when that write failed."""

    def __init__(
        self, rows: TenantIndex, repeats: RepeatCap, urandom: Callable[[int], bytes], time: SigningTime
    ) -> None:
        self._rows, self._repeats, self._urandom, self._time = rows, repeats, urandom, time

    def prepare_all(self, groups: list[Group], first: int, last_note: str) -> tuple[Batch, Tally | None]:
        """`prepare` of `groups`, with the `Tally` of their names for the repeats cap."""
        digests = keyed(self._rows, groups)
        return self.prepare(groups, digests, first, last_note), self._repeats.tally(digests.names)

    def prepare(self, groups: list[Group], digests: Keyed, first: int, last_note: str) -> Batch:
        """A batch starting at index `first`: its salts and its random placement, cut from one
        CSPRNG draw; its entries; its RocksDB writes (the tenant index, the entry bundle in index
        order, `last_note`: the last signed checkpoint, the time its own checkpoint will carry)."""
        n = sum(g.size for g in groups)
        randomness = self._urandom((SALT_SIZE + _KEY_SIZE) * n)
        end = SALT_SIZE * n
        salts = list(cut(randomness[:end], SALT_SIZE))
        order, rank = placement(memoryview(randomness)[end:].cast("Q").tolist(), n)
        indices = list(map(first.__add__, rank))
        entries, made = group_entries(groups, salts, digests.multihashes)
        if made:
            puts = rows_with_made(self._rows, made, entries, digests, indices, salts)
        else:
            puts = self._rows.rows(digests.tenants, digests.multihashes, indices, salts, names=digests.names)
        # encode_bundle of the entries in index order, framed by one join (every v2 entry is
        # ENTRY_SIZE bytes); then the entries cut from it again, so that the passes over them in
        # index order (leaf hashes, tile bundles) read memory in order, not at random.
        bundle = _FRAME + _FRAME.join(map(entries.__getitem__, order))
        puts[state.batch_key(first)] = bundle
        placed = list(struct.unpack(f"{len(_FRAME)}x{ENTRY_SIZE}s" * n, bundle))
        if last_note:
            puts[state.CHECKPOINT] = last_note.encode()
        timestamp = self._time.next()
        puts[state.SIGNED_TIME] = state.u64(timestamp)
        puts.update([state.batch_time(first, n, timestamp)])  # its signed time, by index: batch_times
        return Batch(first, placed, rank, indices, entries, salts, puts, timestamp)


@dataclass
class Flight:
    """A batch launched: written, then integrated, by its `task`; `written` says, once its write
    is over, whether it is durable (False: it failed, and the batch prepared after it must be made
    again); `counts`, its REPEATS_MAX count rows, which the next batch counts before they land."""

    batch: Batch
    groups: list[Group]
    counts: dict[bytes, bytes]
    written: asyncio.Future[bool]
    task: asyncio.Task[None] | None = None


def fail_groups(groups: Sequence[Group], error: BaseException) -> None:
    """Give `error` to every caller of `groups` not answered yet (a NotarError as it is: a 503
    when retryable; anything else as the sequencer stopping)."""
    failure = error if isinstance(error, NotarError) else SequencerStopped(str(error) or type(error).__name__)
    for g in groups:
        if not g.future.done():
            g.future.set_exception(failure)


class Retryable(StorageError):
    """A batch that was certainly not written: its callers may submit again."""

    def __init__(self, message: str) -> None:
        super().__init__(message, transient=True)
