"""Compact batch answers (merkle.compact): expanded, they are the default answer byte for byte;
tampered, they are refused with one line."""

from __future__ import annotations

import os
import random
from dataclasses import dataclass

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from merkle.checkpoint import Checkpoint, sign_checkpoint
from merkle.compact import answer, batch_nodes, expand, write_part
from merkle.cosignature import CosignatureSigner
from merkle.digests import make_entry, parse_digest
from merkle.hashing import leaf_hash
from merkle.note import Signer
from merkle.proofs import Tree
from merkle.receipt_writer import write_receipts
from tests.merkle.reference import ref_path

SUBJECT = "acme"
KEYS = {
    o: (Signer.generate(o), CosignatureSigner.generate(o + "/clock"))
    for o in ("n.example/log", "n.example/log/1", "n.example/log/2")
}


@dataclass
class Proven:
    index: int
    entry: bytes
    salt: bytes
    tree_size: int
    inclusion: list[bytes]
    checkpoint: str


def _shard(origin: str, size: int, digests: list[str], rng: random.Random) -> tuple[bytes, bytes]:
    """One shard's part of a request: its default answer's receipts (as `write_receipts`
    writes them, no head or tail) and its compact part, for `digests` placed at random indices
    of a tree of `size` whose other leaves are random."""
    indices = rng.sample(range(size), len(digests))
    salts = [rng.randbytes(16) for _ in digests]
    leaves = [leaf_hash(rng.randbytes(33)) for _ in range(size)]
    entries = [make_entry(parse_digest(d), s, SUBJECT) for d, s in zip(digests, salts, strict=True)]
    for i, e in zip(indices, entries, strict=True):
        leaves[i] = leaf_hash(e)
    tree = Tree(leaves)
    log, clock = KEYS[origin]
    note = sign_checkpoint(Checkpoint(origin, size, tree.root()), log, clock, 1_700_000_000)
    proofs = [tree.inclusion_proof(i) for i in indices]
    proven = [
        Proven(i, e, s, size, p, note) for i, e, s, p in zip(indices, entries, salts, proofs, strict=True)
    ]
    default = write_receipts(
        subject=SUBJECT,
        origin=origin,
        digests=[parse_digest(d) for d in digests],
        proven=proven,
        head=b"",
        tail=b"",
    )
    nodes = batch_nodes(indices, size, proofs)
    return default, write_part(subject=SUBJECT, checkpoint=note, indices=indices, salts=salts, nodes=nodes)


def _digests(n: int, rng: random.Random) -> list[str]:
    return [("blake3:" if rng.random() < 0.8 else "sha256:") + rng.randbytes(32).hex() for _ in range(n)]


def _request(seed: int, parts: list[tuple[int, int]]) -> tuple[list[str], bytes, bytes]:
    """A request over shards: (count, tree size) per part; its digests, default and compact answers."""
    rng = random.Random(seed)
    digests = _digests(sum(c for c, _ in parts), rng)
    defaults, compacts, at = [], [], 0
    for p, (count, size) in enumerate(parts):
        origin = list(KEYS)[p]
        d, c = _shard(origin, size, digests[at : at + count], rng)
        defaults.append(d)
        compacts.append(c)
        at += count
    return digests, b'{"receipts":[' + b",".join(defaults) + b"]}", answer(compacts)


@st.composite
def requests(draw: st.DrawFn) -> list[tuple[int, int]]:
    shards = draw(st.integers(1, 3))
    out = []
    for _ in range(shards):
        size = draw(st.integers(1, 600))
        out.append((draw(st.integers(1, size)), size))
    return out


@settings(max_examples=60, deadline=None)
@given(requests(), st.integers(0, 2**32))
def test_expanded_compact_answer_is_the_default_answer_byte_for_byte(
    parts: list[tuple[int, int]], seed: int
) -> None:
    digests, default, compact = _request(seed, parts)
    receipts = expand(compact, digests)
    assert b'{"receipts":[' + b",".join(r.to_json() for r in receipts) + b"]}" == default
    assert [str(r.digest) for r in receipts] == digests


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 300), st.data())
def test_nodes_are_the_minimal_set(size: int, data: st.DataObject) -> None:
    """The nodes sent are exactly the proof nodes of the entries that no entry's leaves hash
    up to: each is the root of a subtree holding none of the entries, whose sibling holds some."""
    indices = data.draw(st.lists(st.integers(0, size - 1), min_size=1, max_size=size, unique=True))
    leaves = [leaf_hash(i.to_bytes(4, "big")) for i in range(size)]
    tree = Tree(leaves)
    proofs = [ref_path(i, leaves) for i in indices]
    nodes = batch_nodes(indices, size, proofs)
    chosen = set(indices)

    def sent(lo: int, hi: int) -> list[bytes]:  # RFC 9162's recursive shape, by leaf ranges
        if hi - lo == 1:
            return []
        k = 1 << ((hi - lo - 1).bit_length() - 1)
        out = []
        for a, b in ((lo, lo + k), (lo + k, hi)):
            if any(a <= i < b for i in chosen):
                out += sent(a, b)
            else:
                out.append(tree.root(b) if a == 0 else _subtree(leaves[a:b]))
        return out

    assert sorted(nodes) == sorted(sent(0, size))
    assert len(nodes) <= sum(len(p) for p in proofs)


def _subtree(leaves: list[bytes]) -> bytes:
    return Tree(leaves).root()


def _tamper(compact: bytes, change: str) -> bytes:
    doc = orjson.loads(compact)
    part = doc["parts"][0]
    if change == "node":
        n = part["nodes"]
        part["nodes"] = ("0" if n[0] != "0" else "1") + n[1:]
    elif change == "extra node":
        part["nodes"] += "00" * 32
    elif change == "missing node":
        part["nodes"] = part["nodes"][64:]
    elif change == "index":
        part["indices"][0] += 1
    elif change == "index out of range":
        part["indices"][0] = 10**6
    elif change == "repeated index":
        part["indices"][-1] = part["indices"][0]
    elif change == "salt":
        part["salts"] = ("0" if part["salts"][0] != "0" else "1") + part["salts"][1:]
    elif change == "subject":
        part["subject"] = "other"
    elif change == "checkpoint root":
        lines = part["checkpoint"].split("\n")
        lines[2] = "A" + lines[2][1:] if lines[2][0] != "A" else "B" + lines[2][1:]
        part["checkpoint"] = "\n".join(lines)
    elif change == "upper-case hex":
        part["salts"] = part["salts"].upper()
    elif change == "unknown member":
        part["extra"] = 1
    elif change == "format":
        doc["format"] = "notar.batch.v0"
    elif change == "no parts":
        doc["parts"] = []
    return orjson.dumps(doc)


CHANGES = [
    "node", "extra node", "missing node", "index", "index out of range", "repeated index", "salt",
    "subject", "checkpoint root", "upper-case hex", "unknown member", "format", "no parts",
]  # fmt: skip


@pytest.mark.parametrize("change", CHANGES)
def test_tampered_compact_answers_are_refused_with_one_line(change: str) -> None:
    digests, _, compact = _request(7, [(40, 300), (20, 97)])
    expand(compact, digests)  # as sent, it expands
    with pytest.raises(ValueError) as e:
        expand(_tamper(compact, change), digests)
    assert "\n" not in str(e.value) and str(e.value)


def test_an_answer_that_does_not_fit_the_request_is_refused() -> None:
    digests, _, compact = _request(3, [(10, 50)])
    for others in (digests[:-1], [*digests, digests[0]], [digests[1], digests[0], *digests[2:]]):
        with pytest.raises(ValueError):
            expand(compact, others)
    with pytest.raises(ValueError, match="JSON"):
        expand(os.urandom(8).hex().encode() + b"{", digests)
