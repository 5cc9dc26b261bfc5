"""Spreading writes over shards (SPEC §10): one `Submitter` in front of every writable shard.

Each request's digests are cut into contiguous parts, sized by each healthy shard's spare capacity
(its `Loaded.spare()` when it can tell, else what this front has in flight there), submitted
concurrently; the shards' answers are joined in request order without being parsed (each is
`{"receipts":[…]}`, one receipt per digest of its part, written by the anchor that owns the log;
or, for a compact answer, `{"format":"notar.batch.v1","parts":[…]}`: merkle.compact).

A shard that refuses (PushbackError) or fails (another 5xx kind, a connection error, no answer
within `timeout_s`) is marked down and its part goes to the others within the same request; it is
tried again, with a small part, after a back-off (doubling to `backoff_max_s`, or the Retry-After
it gave). When no shard can take what is left, the request gets 503 with Retry-After ≤ 2 s.

What a shard answered (acknowledged) is never sent anywhere else. A part is re-sent only when its
shard gave no answer: surely not taken (refused before queuing, unreachable), or unsure (timed
out or cut off after sending, a 5xx after reading it). An unsure part may have been sequenced:
re-sending it (`resend_unsure`, the default) can notarize its digests a second time in another
shard, whose receipts the client never saw but finds by look-up, exactly what the client's own
retry of a failed request does today; nothing is lost either way. With `resend_unsure=False`
such a request fails with 503 instead (the client retries).

A request over several parts is not atomic: when one part is refused for the request's own sake
(a 4xx such as 409 too-many-repeats, answered as it is) or what is left fits nowhere (503), the
parts other shards acknowledged stay in their logs (look-ups find them; a retry notarizes again).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import aiohttp
from opentelemetry.metrics import CallbackOptions, Meter, NoOpMeter, Observation

from merkle import compact as compact_answer
from services.internal.wire import RECEIPTS_HEAD, RECEIPTS_TAIL
from services.model import Digests, Submitter
from storage.errors import NotarError, PushbackError, StorageError

RETRY_AFTER_MAX_S = 2.0  # SPEC §10: the 503 of a request no shard can take says at most this


@dataclass(frozen=True)
class SpreadConfig:
    """How a `Spread` cuts requests and treats failing shards (defaults suit K anchors over HTTP
    and in one process alike)."""

    part_min: int = 256
    """Digests below which a part is not cut further: each part costs a round trip and a group in
    the shard's batch, and many requests at once spread the load anyway."""
    window: int = 20_000
    """A shard that cannot tell its spare capacity (over HTTP) weighs this many entries less
    those this front has in flight there (at least 1): the least busy gets the most."""
    timeout_s: float = 15.0
    """A part not answered by then is unsure: its shard is marked down."""
    backoff_s: float = 0.25
    backoff_max_s: float = 2.0
    probe_max: int = 256
    """The most digests a shard gets right after a back-off, until it answers again."""
    resend_unsure: bool = True


@runtime_checkable
class Loaded(Protocol):
    """A shard that can tell its load cheaply (in process: its sequencer's queue)."""

    def spare(self) -> int | None:
        """Entries it would queue right now before refusing with pushback; None: cannot tell."""
        ...


@dataclass
class ShardHealth:
    """What this front knows of one shard."""

    inflight: int = 0
    """Entries sent there and not answered yet."""
    down_until: float = 0.0
    """Clock time before which it gets nothing (its back-off)."""
    failures: int = 0
    """Parts it failed or refused in a row; 0: up."""
    last_error: str = ""

    def usable(self, now: float) -> bool:
        return now >= self.down_until


@dataclass(frozen=True)
class _Failed:
    sure: bool  # the shard surely did not take the part


@dataclass(frozen=True)
class _Part:
    shard: int
    submitter: Submitter
    start: int
    end: int


@dataclass
class _Request:
    """One request's progress: what is left to place and what came back."""

    tenant: str
    digests: Digests
    pending: list[tuple[int, int]]
    compact: bool = False
    answers: dict[int, bytes] = field(default_factory=dict)  # start of a part -> its answer
    tried: set[int] = field(default_factory=set)  # shards that failed it: not asked again


class Spread:
    """A `Submitter` over the writable shards, given as {shard id: Submitter}; see the module's
    docstring. `meter` gets per-shard instruments; `clock` is monotonic seconds (tests pass theirs)."""

    def __init__(
        self,
        shards: Mapping[int, Submitter],
        *,
        config: SpreadConfig | None = None,
        meter: Meter | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._cfg = config or SpreadConfig()
        self._clock = clock
        self._shards: dict[int, Submitter] = {}
        self._loaded: dict[int, Loaded] = {}  # those that tell their spare (isinstance once: it is slow)
        self._health: dict[int, ShardHealth] = {}
        self._turn = itertools.count()
        self.set_shards(shards)
        m = meter or NoOpMeter("notar")
        self._acked = m.create_counter(
            "notar_spread_entries",
            unit="1",
            description="entries each shard acknowledged through this front, by shard",
        )
        self._failures = m.create_counter(
            "notar_spread_failures",
            unit="1",
            description="parts a shard did not take, by shard and reason (pushback, error, timeout)",
        )
        self._moved = m.create_counter(
            "notar_spread_moved_entries",
            unit="1",
            description="entries sent to other shards because theirs gave no answer, by shard and sure "
            "(true: surely not taken there)",
        )
        self._busy = m.create_counter(
            "notar_spread_unavailable", unit="1", description="requests no shard could take (503)"
        )
        m.create_observable_gauge(
            "notar_spread_shard_up",
            [self._observe_up],
            unit="1",
            description="1 while a shard takes parts, 0 from a failure or refusal until it takes one again",
        )
        m.create_observable_gauge(
            "notar_spread_inflight_entries",
            [self._observe_inflight],
            unit="1",
            description="entries sent to a shard and not answered yet, by shard",
        )

    def set_shards(self, shards: Mapping[int, Submitter]) -> None:
        """The writable shards from now on (the shard table changed); a shard kept keeps its
        health. Parts under way finish with the submitter they were given."""
        if not shards:
            raise ValueError("no writable shard to spread entries over")
        self._shards = dict(sorted(shards.items()))
        self._loaded = {i: s for i, s in self._shards.items() if isinstance(s, Loaded)}
        self._health = {i: self._health.get(i) or ShardHealth() for i in self._shards}

    def health(self) -> Mapping[int, ShardHealth]:
        return dict(self._health)

    def refusal(self, count: int = 1) -> NotarError | None:
        """PushbackError when no shard would take one more entry right now, else None."""
        now = self._clock()
        for i, submitter in self._shards.items():
            if self._health[i].usable(now) and submitter.refusal(1) is None:
                return None
        return self._unavailable(count)

    async def submit(self, tenant: str, digests: Digests, *, compact: bool = False) -> bytes:
        """`{"receipts": [...]}` for `digests` in order, their parts notarized by one shard each;
        with `compact`, the compact answer whose parts are the shards' parts in order."""
        head, tail = _framing(compact)
        if not len(digests):
            return head + tail
        request = _Request(tenant, digests, [(0, len(digests))], compact)
        while request.pending:
            parts = self._plan(request)
            if not parts:
                self._busy.add(1)
                raise self._unavailable(sum(b - a for a, b in request.pending))
            request.pending = []
            if len(parts) == 1:  # most requests: no task to make
                outcomes = [await self._send(request, parts[0])]
            else:
                outcomes = await asyncio.gather(*(self._send(request, p) for p in parts))
            refused: NotarError | None = None
            for part, outcome in zip(parts, outcomes, strict=True):
                if isinstance(outcome, bytes):
                    request.answers[part.start] = outcome
                elif isinstance(outcome, NotarError):
                    refused = refused or outcome
                else:
                    request.tried.add(part.shard)
                    request.pending.append((part.start, part.end))
                    if not outcome.sure and not self._cfg.resend_unsure:
                        refused = refused or self._unavailable(part.end - part.start)
                    else:
                        attrs = {"shard": str(part.shard), "sure": str(outcome.sure).lower()}
                        self._moved.add(part.end - part.start, attrs)
            if refused is not None:
                raise refused
        if len(request.answers) == 1:  # one part: its answer is the request's, as it came
            return next(iter(request.answers.values()))
        a, b = len(head), len(tail)
        inner = [memoryview(request.answers[start])[a:-b] for start in sorted(request.answers)]
        return head + b",".join(inner) + tail

    # -- placing -------------------------------------------------------------------------------
    def _plan(self, request: _Request) -> list[_Part]:
        """Parts covering what is left of `request`, over the shards with the most spare
        capacity; [] when they cannot hold it all now."""
        now = self._clock()
        total = sum(b - a for a, b in request.pending)
        turn = next(self._turn)
        ranked: list[tuple[int, int, int, int | None]] = []  # (-weight, tie, shard, cap)
        for pos, i in enumerate(self._shards):
            h = self._health[i]
            if i in request.tried or not h.usable(now):
                continue
            loaded = self._loaded.get(i)
            spare = None if loaded is None else loaded.spare()
            weight = max(self._cfg.window - h.inflight, 1) if spare is None else spare
            cap = spare
            if h.failures:  # back from a back-off: a small part first
                cap = self._cfg.probe_max if cap is None else min(cap, self._cfg.probe_max)
            if cap is None or cap > 0:
                ranked.append((-weight, (pos - turn) % len(self._shards), i, cap))
        ranked.sort()
        count = min(len(ranked), max(1, total // self._cfg.part_min))
        if count == 1 and len(request.pending) == 1 and _room([ranked[0][3]]) >= total:
            (a, b), shard = request.pending[0], ranked[0][2]  # most requests: one part, no arithmetic
            return [_Part(shard, self._shards[shard], a, b)]
        while count < len(ranked) and _room(c[3] for c in ranked[:count]) < total:
            count += 1
        chosen = ranked[:count]
        sizes = _shares(total, [-c[0] for c in chosen], [c[3] for c in chosen])
        if sizes is None:
            return []
        return _carve(
            request.pending, [(c[2], self._shards[c[2]], n) for c, n in zip(chosen, sizes, strict=True)]
        )

    async def _send(self, request: _Request, part: _Part) -> bytes | NotarError | _Failed:
        """The part's answer (its framing checked); the request's own error (a 4xx kind);
        or _Failed, its shard marked down."""
        size = part.end - part.start
        refused = part.submitter.refusal(size)
        if refused is not None:
            return self._down(part, refused, sure=True)
        a, b = part.start, part.end
        whole = request.digests
        digests = whole if b - a == len(whole) else Digests(whole.texts[a:b], whole.values[32 * a : 32 * b])
        h = self._health.get(part.shard) or ShardHealth()  # the table may have changed meanwhile
        h.inflight += size
        try:
            async with asyncio.timeout(self._cfg.timeout_s):
                answer = await part.submitter.submit(request.tenant, digests, compact=request.compact)
        except TimeoutError:
            return self._down(part, f"no answer within {self._cfg.timeout_s} s", sure=False, reason="timeout")
        except NotarError as e:
            if e.status < 500:
                return e
            return self._down(part, e, sure=_surely_not_taken(e))
        except (OSError, aiohttp.ClientError) as e:
            return self._down(part, e, sure=False)
        finally:
            h.inflight -= size
        head, tail = _framing(request.compact)
        if not (answer.startswith(head + b"{") and answer.endswith(b"}" + tail)):
            return self._down(part, f"malformed answer {answer[:80]!r}", sure=False)
        h.failures, h.down_until = 0, 0.0
        self._acked.add(size, {"shard": str(part.shard)})
        return answer

    def _down(self, part: _Part, error: object, *, sure: bool, reason: str = "error") -> _Failed:
        """Marks the part's shard down for its back-off: the Retry-After of a pushback, else
        doubling. A shard that tells its spare capacity is not marked down for a pushback: it
        gets parts again as soon as it says it has room."""
        shard = part.shard
        h = self._health.get(shard) or ShardHealth()
        if isinstance(error, PushbackError):
            reason, wait = "pushback", min(error.retry_after, self._cfg.backoff_max_s)
            if isinstance(part.submitter, Loaded):  # rare: after a refusal
                wait = 0.0
        else:
            wait = min(self._cfg.backoff_s * 2 ** min(h.failures, 16), self._cfg.backoff_max_s)
        if wait > 0:
            h.failures += 1
            h.down_until = max(h.down_until, self._clock() + wait)
        h.last_error = str(error)[:300]
        self._failures.add(1, {"shard": str(shard), "reason": reason})
        return _Failed(sure)

    def _unavailable(self, count: int) -> PushbackError:
        now = self._clock()
        waits = [h.down_until - now for h in self._health.values() if h.down_until > now]
        retry = min(RETRY_AFTER_MAX_S, max(1.0, min(waits, default=1.0)))
        return PushbackError(
            f"none of the {len(self._shards)} shards can take {count} entries now", retry_after=retry
        )

    def _observe_up(self, _: CallbackOptions) -> list[Observation]:
        return [Observation(int(h.failures == 0), {"shard": str(i)}) for i, h in self._health.items()]

    def _observe_inflight(self, _: CallbackOptions) -> list[Observation]:
        return [Observation(h.inflight, {"shard": str(i)}) for i, h in self._health.items()]


def _framing(compact: bool) -> tuple[bytes, bytes]:
    """What surrounds the parts of an answer: receipts, or the compact answer's parts."""
    return (compact_answer.HEAD, compact_answer.TAIL) if compact else (RECEIPTS_HEAD, RECEIPTS_TAIL)


def _surely_not_taken(error: NotarError) -> bool:
    """Whether a shard's 5xx error says it did not take the part: it refused it (pushback: a
    sequencer refuses before it queues, or drops what it queued unwritten), or it could not be
    reached at all. Anything else (cut off, a failure after it read the part) is unsure."""
    return isinstance(error, PushbackError) or (
        isinstance(error, StorageError) and isinstance(error.__cause__, aiohttp.ClientConnectorError)
    )


def _room(caps: Iterable[int | None]) -> float:
    return sum(float("inf") if c is None else c for c in caps)


def _shares(total: int, weights: Sequence[int], caps: Sequence[int | None]) -> list[int] | None:
    """`total` split in proportion to `weights` (largest remainders first), none over its cap
    (None: no cap): what a full one cannot hold goes to the others; None when all are full."""
    sizes = [0] * len(weights)
    left, open_ = total, list(range(len(weights)))
    while left > 0 and open_:
        weight = sum(weights[j] for j in open_)
        give = {j: left * weights[j] // weight for j in open_}
        extra = left - sum(give.values())
        for j in sorted(open_, key=lambda j: -weights[j])[:extra]:
            give[j] += 1
        still = []
        for j in open_:
            cap = caps[j]
            room = None if cap is None else cap - sizes[j]
            n = give[j] if room is None else min(give[j], room)
            sizes[j] += n
            left -= n
            if room is None or n < room:
                still.append(j)
        open_ = still
    return None if left > 0 else sizes


def _carve(pending: Sequence[tuple[int, int]], sizes: Sequence[tuple[int, Submitter, int]]) -> list[_Part]:
    """Contiguous parts of the `pending` ranges, in order, `n` digests for each (shard,
    submitter, n); a shard whose share spans two ranges gets a part of each."""
    parts: list[_Part] = []
    ranges = iter(pending)
    a, b = next(ranges)
    for shard, submitter, n in sizes:
        while n > 0:
            if a == b:
                a, b = next(ranges)
            take = min(n, b - a)
            parts.append(_Part(shard, submitter, a, a + take))
            a, n = a + take, n - take
    return parts
