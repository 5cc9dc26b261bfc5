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


class SequencerSealed(SequencerStopped):
    """A sealed sequencer (a freezing shard's: services.anchor.freeze) takes no more entries, for
    good. Its problem says `sealed: true`; unlike other 503s its detail is for the client (it
    names the shard and why), so an ingest pod or a worker relaying it keeps it
    (services.internal.client)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.extra = {"sealed": True}
