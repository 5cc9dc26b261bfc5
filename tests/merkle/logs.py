"""A small signed log and receipts of it, for the receipt, verdict, aggregate and export tests."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import blake3

from merkle import Checkpoint, Receipt, Signer, Tree, leaf_hash, make_entry, parse_digest
from merkle.anchors.local import make_block
from merkle.checkpoint import sign_checkpoint
from merkle.cosignature import CosignatureSigner

ORIGIN = "notar.localhost/log"
MEMBER_PATHS = [
    "format", "digest", "salt", "subject", "entry", "log", "log.origin", "log.index", "log.tree_size",
    "log.inclusion", "checkpoint", "anchors",
]  # fmt: skip
"""Every member of a receipt, the log's as dotted paths."""
DELETE = object()
SIGNED_AT = 1_790_000_000
SUBJECT = "acme"


@dataclass
class Log:
    origin: str
    signer: Signer
    clock: CosignatureSigner
    documents: list[bytes]
    salts: list[bytes]
    tree: Tree
    checkpoint: Checkpoint
    note: str

    @property
    def keys(self) -> list[str]:
        return [self.signer.verifier().to_key(), self.clock.verifier().to_key()]

    def block(self, time: int = SIGNED_AT + 5, **change: Any) -> dict[str, Any]:
        """A local anchor record of this log's checkpoint (or of `checkpoint=` another tree)."""
        cp = change.pop("checkpoint", self.checkpoint)
        return {
            "type": "local",
            **make_block(previous=None, time=time, checkpoint=cp, signer=self.signer),
            **change,
        }

    def receipt(self, index: int = 21, anchors: Sequence[Mapping[str, Any]] = ()) -> Receipt:
        return Receipt.build(
            digest=parse_digest("blake3:" + blake3.blake3(self.documents[index]).hexdigest()),
            salt=self.salts[index],
            subject=SUBJECT,
            origin=self.origin,
            index=index,
            tree_size=self.tree.size,
            inclusion=self.tree.inclusion_proof(index),
            checkpoint=self.note,
            anchors=anchors,
        )


def make_log(
    origin: str = ORIGIN, n: int = 37, *, signer: Signer | None = None, signed_at: int = SIGNED_AT
) -> Log:
    signer = signer or Signer.generate(origin)
    clock = CosignatureSigner.generate(origin + "/clock")
    docs = [f"document {i} of {origin}".encode() for i in range(n)]
    salts = [bytes([i % 256]) * 16 for i in range(n)]
    digests = [parse_digest("blake3:" + blake3.blake3(d).hexdigest()) for d in docs]
    tree = Tree([leaf_hash(make_entry(d, s, SUBJECT)) for d, s in zip(digests, salts, strict=True)])
    cp = Checkpoint(origin, n, tree.root())
    return Log(origin, signer, clock, docs, salts, tree, cp, sign_checkpoint(cp, signer, clock, signed_at))


def set_member(obj: dict[str, Any], path: str, value: Any) -> None:
    """Set the member at a dotted `path` of a receipt object in place: to `value`, to
    `value(old)` when it is callable, or remove it when `value` is DELETE."""
    *parents, last = path.split(".")
    target = obj
    for p in parents:
        target = target[p]
    if value is DELETE:
        del target[last]
    else:
        target[last] = value(target[last]) if callable(value) else value
