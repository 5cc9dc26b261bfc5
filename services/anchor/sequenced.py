"""The sequencer's own value types: its running counts and the error of a sequencer that takes
no more entries (its config, `SequencerConfig`, is built with the others in
services.common.components; what comes out of it, `SequencedGroup`, is in services.model: every
service shares those)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from services.common.components import SequencerConfig
from storage.errors import NotarError

__all__ = ["SequencerConfig", "SequencerStopped", "Stats"]


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
