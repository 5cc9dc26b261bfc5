"""Chain backends of the committer, one file per kind (SPEC §4): local, evm, rfc3161.

Each backend turns what the committer hands it into one anchor record: a published checkpoint
(``Target``), or, with shards, an aggregate of the latest checkpoint of every shard
(``AggregateTarget``, SPEC §4, §10). Both state what a backend commits to the same way: the log
whose key signs a local block (``origin``), ``size`` and ``root``, the text an RFC 3161 token
stamps (``stamped``), the EVM ``originHash`` (``origin_hash``), and a JSON ``context`` from which
``target_from_context`` rebuilds them after a restart (the EVM journal). ``anchor`` returns only a
record that is final and verifies; anything else raises ``AnchorError`` (the committer retries
later, with backoff) — never a record that might not hold.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from merkle.aggregate import Aggregate, AnchorTarget, aggregate_body, make_aggregate
from merkle.anchors.evm import aggregate_origin_hash, origin_hash
from merkle.checkpoint import Checkpoint, parse_checkpoint
from merkle.note import parse_note
from storage.errors import NotarError


class AnchorError(NotarError):
    """An anchor could not be made now (backend down, garbage answer, out of funds...)."""


@dataclass(frozen=True)
class Target:
    """A signed checkpoint to anchor: the whole note, its body and the parsed checkpoint."""

    note: str
    body: str
    checkpoint: Checkpoint

    @classmethod
    def from_note(cls, note: str) -> Target:
        body = parse_note(note).text
        return cls(note, body, parse_checkpoint(body))

    @property
    def size(self) -> int:
        return self.checkpoint.size

    @property
    def root(self) -> bytes:
        return self.checkpoint.root

    @property
    def origin(self) -> str:
        return self.checkpoint.origin

    @property
    def stamped(self) -> str:
        """The text an RFC 3161 token stamps: the checkpoint body."""
        return self.body

    @property
    def origin_hash(self) -> bytes:
        """The EVM ``originHash``: SHA-256(origin)."""
        return origin_hash(self.origin)

    def verifiable(self) -> AnchorTarget:
        """What merkle checks a record of this target against (``merkle.aggregate``)."""
        return AnchorTarget.of(self.checkpoint, self.body)

    def context(self) -> dict[str, Any]:
        return {"note": self.note}


@dataclass(frozen=True)
class ShardHead:
    """One shard's latest checkpoint in an aggregate: the shard's id, its log prefix in the bucket
    (where its anchor records go) and its checkpoint."""

    shard: int
    prefix: str
    target: Target


@dataclass(frozen=True)
class AggregateTarget:
    """The latest checkpoints of several shards, anchored once by the aggregating log ``origin``
    (shard 0's, or after shard 0 froze the shard of anchor ordinal 0: its key signs local blocks):
    the RFC 9162 root over their bodies, ordered by shard id, and each one's proof. ``base`` is
    the deployment's ORIGIN (shard 0's origin), which the EVM ``originHash`` names."""

    origin: str
    base: str
    heads: tuple[ShardHead, ...]
    root: bytes
    proofs: tuple[Aggregate, ...]

    @classmethod
    def of(cls, origin: str, heads: Sequence[ShardHead], base: str | None = None) -> AggregateTarget:
        """The aggregate of ``heads`` (at least one), put in shard order, by the log ``origin`` of
        the deployment ``base`` (default: ``origin``); ValueError when a shard is given twice."""
        ordered = tuple(sorted(heads, key=lambda h: h.shard))
        if len({h.shard for h in ordered}) != len(ordered):
            raise ValueError("an aggregate holds one checkpoint per shard")
        root, proofs = make_aggregate([h.target.checkpoint for h in ordered])
        return cls(origin, origin if base is None else base, ordered, root, tuple(proofs))

    @property
    def size(self) -> int:
        return len(self.heads)

    @property
    def stamped(self) -> str:
        """The text an RFC 3161 token stamps: ``merkle.aggregate.aggregate_body``."""
        return aggregate_body(self.size, self.root)

    @property
    def origin_hash(self) -> bytes:
        """The EVM ``originHash``: SHA-256(ORIGIN + "/aggregate"), ORIGIN the deployment's."""
        return aggregate_origin_hash(self.base)

    def verifiable(self) -> AnchorTarget:
        """What merkle checks a record against, seen from the first shard's receipt."""
        head = self.heads[0].target
        return AnchorTarget.of(head.checkpoint, head.body, self.proofs[0])

    def context(self) -> dict[str, Any]:
        return {
            "aggregate": self.origin,
            "base": self.base,
            "heads": [{"shard": h.shard, "prefix": h.prefix, "note": h.target.note} for h in self.heads],
        }


Anchorable = Target | AggregateTarget


def target_from_context(context: Mapping[str, Any]) -> Anchorable:
    """The target a ``context()`` was made from; ValueError when it is not one."""
    try:
        if "note" in context:
            return Target.from_note(str(context["note"]))
        heads = [
            ShardHead(int(h["shard"]), str(h["prefix"]), Target.from_note(str(h["note"])))
            for h in context["heads"]
        ]
        return AggregateTarget.of(str(context["aggregate"]), heads, str(context["base"]))
    except (KeyError, TypeError) as e:
        raise ValueError(f"not an anchor target: {e!r}") from e


@dataclass(frozen=True)
class Anchored:
    """A final record, and what it commits to (a backend may finish an earlier target)."""

    target: Anchorable
    record: dict[str, Any]


class Backend(Protocol):
    kind: str

    async def anchor(self, target: Anchorable) -> Anchored:
        """Anchor ``target`` (or first finish an earlier anchoring still in flight)."""
        ...

    async def close(self) -> None: ...
