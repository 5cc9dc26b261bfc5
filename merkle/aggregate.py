"""What an anchor record commits to (SPEC §4, §10): one checkpoint, or an aggregate that includes it.

With shards, one anchor commits to the RFC 9162 root of a tree whose leaves are the checkpoint
bodies of every active shard, ordered by shard id. A leaf is a checkpoint's *body*: its origin, size
and root lines, each ending in a newline (extension lines are not part of it). A record then carries
the aggregate's size and root in place of the checkpoint's, and
`"aggregate": {"size": K, "index": i, "path": [hex, ...]}` proving the receipt's checkpoint at leaf i.

What each kind anchors for an aggregate of size K and root R:

- `local`: a block with `tree_size` K and `root` R; its `origin` is the aggregating log's (shard 0)
  followed by `AGGREGATE_SUFFIX`, and that log's trusted key signs it (blocks made before the
  suffix name the log alone).
- `evm`: `anchor(SHA-256(ORIGIN + AGGREGATE_SUFFIX), K, R)`. ORIGIN (shard 0's origin) is not in the
  receipt of shard i > 0, whose origin is `ORIGIN/i`: a verifier accepts the origin hash of the
  receipt's origin or of that origin without its last `/<digits>` (see `evm_origin_hashes`).
- `rfc3161`: SPEC §4 does not say; notar stamps `aggregate_body(K, R)`, a checkpoint-shaped text
  `notar.aggregate.v1\\n<K>\\n<base64 R>\\n` (origin line naming the construction, so it cannot
  be taken for a checkpoint of a log), and the token's imprint is SHA-256 of that text.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from merkle.checkpoint import MAX_TREE_SIZE, Checkpoint
from merkle.hashing import leaf_hash
from merkle.proofs import Tree, root_from_inclusion

AGGREGATE_ORIGIN = "notar.aggregate.v1"
"""The origin line of the text an RFC 3161 token stamps for an aggregate (module doc)."""
AGGREGATE_SUFFIX = "/aggregate"
"""What names an aggregate after the log that anchors it: in the EVM ``originHash`` and in a
local block's ``origin`` (module doc)."""
MAX_PATH = 64
_HEX64 = re.compile(r"[0-9a-f]{64}")
_SHARD_SUFFIX = re.compile(r"/[0-9]+\Z")


@dataclass(frozen=True)
class Aggregate:
    """The proof that a checkpoint is leaf `index` of an aggregate of `size` checkpoints."""

    size: int
    index: int
    path: tuple[bytes, ...]

    def root_for(self, checkpoint: Checkpoint) -> bytes:
        """The aggregate root that this proof implies for `checkpoint`; ValueError when the path
        cannot belong to a tree of `size` leaves."""
        return root_from_inclusion(leaf_hash(aggregate_leaf(checkpoint)), self.index, self.size, self.path)

    def to_obj(self) -> dict[str, Any]:
        """The record member's JSON value: `{"size": K, "index": i, "path": [hex, ...]}`."""
        return {"size": self.size, "index": self.index, "path": [p.hex() for p in self.path]}


def aggregate_leaf(checkpoint: Checkpoint) -> bytes:
    """A checkpoint's leaf in an aggregate: its origin, size and root lines, each with its newline."""
    return Checkpoint(checkpoint.origin, checkpoint.size, checkpoint.root).format().encode("utf-8")


def aggregate_body(size: int, root: bytes) -> str:
    """The text an RFC 3161 token stamps for an aggregate of `size` checkpoints with `root`."""
    return Checkpoint(AGGREGATE_ORIGIN, size, root).format()


def make_aggregate(checkpoints: Sequence[Checkpoint]) -> tuple[bytes, list[Aggregate]]:
    """The aggregate root of `checkpoints` (in shard order) and each one's `Aggregate` proof."""
    if not checkpoints:
        raise ValueError("an aggregate holds at least one checkpoint")
    tree = Tree([leaf_hash(aggregate_leaf(cp)) for cp in checkpoints])
    n = len(checkpoints)
    return tree.root(), [Aggregate(n, i, tuple(tree.inclusion_proof(i))) for i in range(n)]


def parse_aggregate(value: object) -> Aggregate:
    """An `aggregate` member's value, strictly; ValueError naming the part that is wrong."""
    if not isinstance(value, Mapping):
        raise ValueError("aggregate must be an object {size, index, path}")
    extra = sorted(str(k)[:40] for k in value if k not in ("size", "index", "path"))
    if extra:
        raise ValueError(f"aggregate has an unknown member {extra[0]!r}")
    size, index, path = value.get("size"), value.get("index"), value.get("path")
    for name, v, low in (("size", size, 1), ("index", index, 0)):
        if isinstance(v, bool) or not isinstance(v, int) or not low <= v <= MAX_TREE_SIZE:
            raise ValueError(f"aggregate.{name} must be an integer of at least {low}")
    assert isinstance(size, int) and isinstance(index, int)
    if index >= size:
        raise ValueError(f"aggregate.index {index} is outside an aggregate of {size}")
    if not isinstance(path, list) or len(path) > MAX_PATH:
        raise ValueError(f"aggregate.path must be a list of at most {MAX_PATH} hashes")
    for i, h in enumerate(path):
        if not isinstance(h, str) or not _HEX64.fullmatch(h):
            raise ValueError(f"aggregate.path[{i}] must be 64 lowercase hex digits")
    return Aggregate(size, index, tuple(bytes.fromhex(h) for h in path))


@dataclass(frozen=True)
class AnchorTarget:
    """What one anchor record must commit to, given the receipt's checkpoint (`checkpoint`, whose
    signed note text up to the blank line is `body`): the checkpoint itself, or, when the record
    carries an `aggregate`, the aggregate's `size` and `root` that the proof leads to."""

    checkpoint: Checkpoint
    body: str
    aggregate: Aggregate | None
    size: int
    root: bytes

    @classmethod
    def of(cls, checkpoint: Checkpoint, body: str, aggregate: Aggregate | None = None) -> AnchorTarget:
        """The target; ValueError when the aggregate's path cannot lead anywhere from `checkpoint`."""
        if aggregate is None:
            return cls(checkpoint, body, None, checkpoint.size, checkpoint.root)
        try:
            root = aggregate.root_for(checkpoint)
        except ValueError as e:
            raise ValueError(
                f"aggregate.path does not fit leaf {aggregate.index} of {aggregate.size}: {e}"
            ) from e
        return cls(checkpoint, body, aggregate, aggregate.size, root)

    @classmethod
    def for_record(cls, record: Mapping[str, Any], checkpoint: Checkpoint, body: str) -> AnchorTarget:
        """The target of one record (a record's fields): aggregated when it has `aggregate`."""
        aggregate = parse_aggregate(record["aggregate"]) if "aggregate" in record else None
        return cls.of(checkpoint, body, aggregate)

    @property
    def stamped(self) -> str:
        """The text whose SHA-256 an RFC 3161 token stamps: the checkpoint body, or the aggregate's."""
        return self.body if self.aggregate is None else aggregate_body(self.size, self.root)

    def evm_origin_hashes(self) -> tuple[bytes, ...]:
        """The `originHash` values an EVM `Anchored` event may carry for this target (module doc)."""
        origin = self.checkpoint.origin
        if self.aggregate is None:
            return (hashlib.sha256(origin.encode("utf-8")).digest(),)
        bases = [origin]
        m = _SHARD_SUFFIX.search(origin)
        if m is not None and m.start() > 0:
            bases.append(origin[: m.start()])
        return tuple(hashlib.sha256(f"{b}/aggregate".encode()).digest() for b in bases)

    def mismatch(self, record: Mapping[str, Any]) -> str | None:
        """Why a record's stated `tree_size` or `root` (hex, `0x` allowed) is not this target's, or
        None when what it states matches."""
        what = "the aggregate" if self.aggregate is not None else "the checkpoint"
        size = record.get("tree_size", self.size)
        if type(size) is not int or size != self.size:
            return f"it names tree size {str(size)[:30]}, {what} has {self.size}"
        if "root" in record:
            root = record["root"]
            if not isinstance(root, str) or root.lower().removeprefix("0x") != self.root.hex():
                return f"it names another root hash than {what}'s"
        return None
