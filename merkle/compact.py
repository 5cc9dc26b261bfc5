"""Compact batch answers (`application/vnd.notar.batch+json`): the receipts of one request in a
fraction of their size, from which the client rebuilds every receipt byte for byte.

A request's receipts repeat what the batch shares: each carries the whole signed checkpoint and
a ~20-hash inclusion proof, most of whose nodes the other receipts of the request also carry or
can compute. The compact answer says each thing once:

    {"format": "notar.batch.v1", "parts": [
      {"subject": "acme", "checkpoint": "<signed note>", "indices": [41, 7, …],
       "salts": "<32 hex per entry>", "nodes": "<64 hex per node>"}, …]}

The request's digests are taken in order by the parts in order (a part holds `len(indices)` of
them: with shards, each contiguous run of the request that one shard's batch took). Within a
part, entry k is the request's next digest, notarized by `subject` with salt k at log index
`indices[k]` of the tree whose size, origin and root the checkpoint's body states. `nodes` is the
smallest set of RFC 9162 tree nodes from which the root and every entry's inclusion proof follow,
given the entries' own leaves: the siblings of the entries' ancestors that are not themselves
ancestors of an entry (a node the client can hash up from its leaves, or from other given nodes,
is never sent). Nodes are listed level by level from the leaves up, by position within a level,
where level h of a tree of size n has ceil(n / 2^h) nodes and the odd last node of a level is
carried up unchanged (RFC 9162's shape, as `merkle.tileset` walks it).

`expand` checks everything it reads (members, types, hex, index range, repeats, node count) and
that the nodes lead to the checkpoint's root; anything else is refused with a ValueError of one
line. It does not check signatures: the receipts it returns are verified as any others are.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from hashlib import sha256

import orjson

from merkle import strictjson
from merkle.checkpoint import parse_checkpoint
from merkle.digests import SALT_SIZE, make_entry, parse_digest
from merkle.hashing import HASH_SIZE
from merkle.note import parse_note
from merkle.receipt import Receipt

FORMAT = "notar.batch.v1"
MEDIA_TYPE = "application/vnd.notar.batch+json"
HEAD = b'{"format":"' + FORMAT.encode() + b'","parts":['
TAIL = b"]}"
PART_MEMBERS = ("subject", "checkpoint", "indices", "salts", "nodes")
MAX_ENTRIES = 100_000  # a part of more entries than any request holds is refused unread


def batch_nodes(indices: Sequence[int], size: int, proofs: Sequence[Sequence[bytes]]) -> list[bytes]:
    """The nodes of a part (module doc) for the entries at `indices` of a tree of `size`, picked
    from their inclusion proofs `proofs` (`proofs[k]` proves `indices[k]`, as RFC 9162 orders
    it). The work is per node of the union of the entries' paths, in set and dict passes: no
    object per entry. ValueError for repeated or out-of-range indices."""
    where = dict(zip(indices, range(len(indices)), strict=True))  # node -> an entry below it
    if len(where) != len(indices):
        raise ValueError("an index is given twice")
    if where and (min(where) < 0 or max(where) >= size):
        raise ValueError(f"an index is outside the tree of size {size}")
    out: list[bytes] = []
    lengths: list[int] = []  # the lengths of the levels below
    n = size
    while n > 1:
        known = where.keys()
        missing = sorted({j ^ 1 for j in known} - known)
        if missing and missing[-1] >= n:  # the odd last node has no sibling: carried up
            missing.pop()
        h, last = len(lengths), n - 1
        lengths.append(n)
        # An entry's proof holds one node per level where its ancestor has a sibling: every
        # level below a node that is not the last of its level, so its sibling is at position h.
        out += [
            proofs[where[m ^ 1]][h if m ^ 1 != last else _position(indices[where[last]], lengths)]
            for m in missing
        ]
        where = {j >> 1: k for j, k in where.items()}
        n = (n + 1) >> 1
    return out


def _position(index: int, lengths: Sequence[int]) -> int:
    """The position in entry `index`'s inclusion proof of its sibling at the level whose length
    is `lengths[-1]`: how many levels below it gave the entry's ancestor a sibling (only the
    last node of a level can lack one)."""
    return sum(1 for h, n in enumerate(lengths[:-1]) if (index >> h) ^ 1 < n)


def write_part(
    *, subject: str, checkpoint: str, indices: Sequence[int], salts: Sequence[bytes], nodes: Sequence[bytes]
) -> bytes:
    """One part's canonical JSON (members in the order of the module doc, no whitespace)."""
    return b"".join(
        (
            b'{"subject":',
            orjson.dumps(subject),
            b',"checkpoint":',
            orjson.dumps(checkpoint),
            b',"indices":',
            orjson.dumps(indices if isinstance(indices, list) else list(indices)),
            b',"salts":"',
            b"".join(salts).hex().encode(),
            b'","nodes":"',
            b"".join(nodes).hex().encode(),
            b'"}',
        )
    )


def answer(parts: Sequence[bytes]) -> bytes:
    """The whole answer of parts written by `write_part`, in the request's order."""
    return HEAD + b",".join(parts) + TAIL


def expand(data: bytes | str, digests: Sequence[str]) -> list[Receipt]:
    """The receipts of `digests` (the request's, in its order) from a compact answer, each
    exactly the receipt the default answer carries (`Receipt.to_json` byte for byte); ValueError
    naming what is wrong when the answer is malformed, does not fit the request, or its nodes do
    not lead to a checkpoint's root."""
    doc = strictjson.loads(data)
    if not isinstance(doc, Mapping) or sorted(doc) != ["format", "parts"]:
        raise ValueError('a compact answer is {"format", "parts"} and nothing else')
    if doc["format"] != FORMAT:
        raise ValueError(f"compact answer format {str(doc['format'])[:40]!r} is not {FORMAT!r}")
    parts = doc["parts"]
    if not isinstance(parts, list) or not parts:
        raise ValueError("parts must be a non-empty list")
    out: list[Receipt] = []
    for p, part in enumerate(parts):
        try:
            out += _expand_part(part, digests[len(out) :])
        except ValueError as e:
            raise ValueError(f"parts[{p}]: {e}") from None
    if len(out) != len(digests):
        raise ValueError(f"the answer holds {len(out)} entries for {len(digests)} digests")
    return out


def _expand_part(part: object, digests: Sequence[str]) -> list[Receipt]:
    if not isinstance(part, Mapping) or sorted(part) != sorted(PART_MEMBERS):
        raise ValueError(f"a part has exactly the members {', '.join(PART_MEMBERS)}")
    subject, note, indices = part["subject"], part["checkpoint"], part["indices"]
    if not isinstance(subject, str) or not isinstance(note, str):
        raise ValueError("subject and checkpoint must be strings")
    body = parse_checkpoint(parse_note(note).text)
    size = body.size
    if not isinstance(indices, list) or not 0 < len(indices) <= min(MAX_ENTRIES, len(digests)):
        raise ValueError("indices must be a non-empty list of at most as many entries as digests are left")
    if not all(type(i) is int and 0 <= i < size for i in indices):
        raise ValueError(f"an index is not an integer inside the tree of size {size}")
    k = len(indices)
    salts = _hex(part["salts"], "salts", SALT_SIZE, k)
    nodes = _hex(part["nodes"], "nodes", HASH_SIZE, None)
    mine = [parse_digest(d) for d in digests[:k]]
    entries = [make_entry(d, s, subject) for d, s in zip(mine, salts, strict=True)]
    leaves = [sha256(b"\x00" + e).digest() for e in entries]
    proofs = node_proofs(indices, size, leaves, nodes, body.root)
    return [
        Receipt(d, s, subject, e, body.origin, i, size, tuple(proof), note)
        for d, s, e, i, proof in zip(mine, salts, entries, indices, proofs, strict=True)
    ]


def _hex(value: object, what: str, width: int, count: int | None) -> list[bytes]:
    if (
        not isinstance(value, str)
        or len(value) % (2 * width)
        or (count is not None and len(value) != 2 * width * count)
    ):
        want = f"{count} × {width}" if count is not None else f"a multiple of {width}"
        raise ValueError(f"{what} must be lowercase hex of {want} bytes")
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raise ValueError(f"{what} is not hex") from None
    if raw.hex() != value:
        raise ValueError(f"{what} must be lowercase hex without spaces")
    return [raw[i : i + width] for i in range(0, len(raw), width)]


def node_proofs(
    indices: Sequence[int], size: int, leaves: Sequence[bytes], nodes: Sequence[bytes], root: bytes
) -> list[list[bytes]]:
    """Every entry's inclusion proof, the tree hashed up level by level from its leaves and
    `nodes` (consumed in the module doc's order); ValueError when the nodes are too few or too
    many, or the root is not `root`."""
    if len(set(indices)) != len(indices):
        raise ValueError("an index is given twice")
    level: dict[int, bytes] = dict(zip(indices, leaves, strict=True))
    levels: list[dict[int, bytes]] = []
    given = iter(nodes)
    n = size
    while n > 1:
        known = level.keys()
        missing = sorted({j ^ 1 for j in known} - known)
        if missing and missing[-1] >= n:
            missing.pop()
        for m in missing:
            node = next(given, None)
            if node is None:
                raise ValueError(f"too few nodes for {len(indices)} entries in a tree of size {size}")
            level[m] = node
        levels.append(level)
        up: dict[int, bytes] = {}
        for j in sorted({j >> 1 for j in level}):
            left = level[2 * j]
            right = level.get(2 * j + 1)
            up[j] = left if right is None else sha256(b"\x01" + left + right).digest()
        level, n = up, (n + 1) >> 1
    if next(given, None) is not None:
        raise ValueError(f"more nodes than {len(indices)} entries in a tree of size {size} need")
    if level.get(0) != root:
        raise ValueError("the entries and nodes do not lead to the checkpoint's root")
    out = []
    for i in indices:
        proof, j = [], i
        for lv in levels:
            sib = lv.get(j ^ 1)
            if sib is not None:
                proof.append(sib)
            j >>= 1
        out.append(proof)
    return out
