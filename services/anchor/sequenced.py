"""What goes into the sequencer and what comes out: its settings, an item to notarize, an entry's
place in the log, running counts, and the error of a sequencer that takes no more entries."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from merkle.digests import Digest
from storage.errors import NotarError


@dataclass(frozen=True)
class SequencerConfig:
    origin: str
    prefix: str = "log/"
    batch_ms: int = 100
    batch_max: int = 20_000
    queue_max: int = 200_000
    publish_backlog: int = 64
    lease_ttl_s: float = 30.0


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


@dataclass
class Stats:
    sequenced: int = 0
    batches: int = 0
    last_batch: int = 0
    published_size: int = 0
    signed_size: int = 0
    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=10_000))


class SequencerStopped(NotarError):
    """The sequencer is not accepting entries (closing, or stopped by a fatal error)."""
