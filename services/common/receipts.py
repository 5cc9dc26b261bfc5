"""Receipts as JSON for the API: many at once, sharing the work a batch has in common."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from merkle.receipt import RECEIPT_FORMAT
from services.anchor.sequencer import Item, Sequenced


def receipts_json(
    origin: str,
    items: Sequence[Item],
    results: Sequence[Sequenced],
    anchors: Sequence[Mapping[str, Any]] = (),
) -> list[dict[str, Any]]:
    """One receipt per item, in order. Proof nodes shared across the batch are hexed once."""
    hexed: dict[bytes, str] = {}

    def hx(h: bytes) -> str:
        s = hexed.get(h)
        if s is None:
            s = hexed[h] = h.hex()
        return s

    anchor_list = [dict(a) for a in anchors]
    return [
        {
            "format": RECEIPT_FORMAT,
            "digest": str(it.digest),
            "entry": r.entry.hex(),
            "log": {
                "origin": origin,
                "index": r.index,
                "tree_size": r.tree_size,
                "inclusion": [hx(h) for h in r.inclusion],
            },
            "checkpoint": r.checkpoint,
            "anchors": anchor_list,
        }
        for it, r in zip(items, results, strict=True)
    ]
