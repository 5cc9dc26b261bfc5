"""The sequencer's own value types: its settings, running counts, and the error of a sequencer
that takes no more entries (what comes out of it, `Sequenced`, is in
services.model: every service shares those)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from services.published.layout import LOG_PREFIX
from storage.errors import NotarError


@dataclass(frozen=True)
class SequencerConfig:
    origin: str
    prefix: str = LOG_PREFIX
    batch_ms: int = 100
    batch_max: int = 20_000
    queue_max: int = 200_000
    publish_backlog: int = 64
    lease_ttl_s: float = 30.0


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
