"""Receipts as JSON for the API: many at once, sharing the work a batch has in common."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from merkle.receipt import RECEIPT_FORMAT
from services.model import Item, Sequenced


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


_SMALL = 8
_HEAD = b'{"format":' + orjson.dumps(RECEIPT_FORMAT) + b',"digest":"'


@functools.lru_cache(maxsize=8)
def _at_log(origin: str) -> str:
    return f'","log":{{"origin":{orjson.dumps(origin).decode()},"index":'


@functools.lru_cache(maxsize=8)
def _tail(checkpoint: str, anchors_json: bytes) -> bytes:
    """A receipt's end, then a comma; the requests of one batch share it."""
    return b']},"checkpoint":' + orjson.dumps(checkpoint) + b',"anchors":' + anchors_json + b"},"


class _Quoted(dict[bytes, bytes]):
    """Each proof node as JSON bytes, made on first use: a batch's upper nodes are in every proof."""

    def __missing__(self, node: bytes) -> bytes:
        text = self[node] = b'"' + node.hex().encode() + b'"'
        return text


def receipts_body(
    origin: str,
    items: Sequence[Item],
    results: Sequence[Sequenced],
    anchors: Sequence[Mapping[str, Any]] = (),
    *,
    digests: Sequence[str] | None = None,
) -> bytes:
    """`{"receipts": [...]}` as JSON: the same bytes as `orjson.dumps` of
    `{"receipts": receipts_json(...)}`, about twice as fast. No dict per receipt: what a batch
    shares (origin, tree size, checkpoint, anchors) is serialized once per run of results that
    share it, each proof node is hexed once, and the pieces are joined into one buffer (a 10,000
    receipt answer is ~17 MB: every extra copy of it costs page faults). `digests`, when given,
    are the items' digests already in canonical text (`str(item.digest)`)."""
    if len(items) != len(results) or (digests is not None and len(digests) != len(items)):
        raise ValueError(f"{len(items)} items, {len(results)} results, {len(digests or ())} digests")
    if len(items) < _SMALL:  # the fixed cost of the fragments outweighs a few dicts
        return orjson.dumps({"receipts": receipts_json(origin, items, results, anchors)})
    node = _Quoted().__getitem__
    join = b",".join
    texts = [str(it.digest) for it in items] if digests is None else digests
    head, at_log = _HEAD, _at_log(origin)
    anchors_json = orjson.dumps([dict(a) for a in anchors]) if anchors else b"[]"
    out = [b'{"receipts":[']
    add = out.extend
    start = 0
    while start < len(results):
        # A run of results proven against one checkpoint: all of them, for one submission.
        first = results[start]
        end = start + 1
        while end < len(results) and (
            results[end].checkpoint == first.checkpoint and results[end].tree_size == first.tree_size
        ):
            end += 1
        at_size = f',"tree_size":{first.tree_size},"inclusion":['
        tail = _tail(first.checkpoint, anchors_json)
        for d, r in zip(texts[start:end], results[start:end], strict=True):
            add((head, f'{d}","entry":"{r.entry.hex()}{at_log}{r.index}{at_size}'.encode(),
                 join(map(node, r.inclusion)), tail))
        start = end
    if len(out) > 1:
        out[-1] = out[-1][:-1]  # no comma after the last receipt
    out.append(b"]}")
    return b"".join(out)
