"""The `local` anchor: notar's own append-only hash chain of signed blocks (SPEC §4).

A block is ``{height, prev, time, origin, tree_size, root, sig}``: ``height`` counts from 0,
``time`` is POSIX seconds, ``root`` the checkpoint's root hash in lowercase hex (for an aggregate,
SPEC §10: ``tree_size`` and ``root`` are the aggregate's, ``origin`` the aggregating log's followed
by ``AGGREGATE_SUFFIX``, as in the EVM ``originHash`` of an aggregate: ``aggregate_block_origin``),
``prev`` the lowercase hex SHA-256 of the previous block's canonical bytes (64 zeros for block 0), ``sig`` the
base64 Ed25519 signature of the log key over ``SIGNING_PREFIX`` followed by the canonical bytes of
the block without ``sig``.

Canonical bytes: JSON of the block's fields (all seven, or six without ``sig``) with keys sorted,
no whitespace, integers in decimal and strings as orjson writes them (UTF-8, only ``"``, ``\\``
and control characters escaped) — what ``JSON.stringify`` of a key-sorted object gives too.

The log key signs because receipts already trust it; the prefix (no trailing newline) makes a
block signature unusable as a signed-note signature, whose texts always end in a newline.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson

from merkle.aggregate import AGGREGATE_SUFFIX, AnchorTarget
from merkle.checkpoint import Checkpoint
from merkle.checks import AnchorVerdict, AnchorVerifier, Status
from merkle.cosignature import CosignatureVerifier, verifier_from_key
from merkle.note import NoteSigner, NoteVerifier, b64decode_canonical
from merkle.receipt import Anchor

SIGNING_PREFIX = b"notar.local-anchor.v1\n"
GENESIS_PREV = "0" * 64
FIELDS = ("height", "prev", "time", "origin", "tree_size", "root", "sig")
_HEX64 = re.compile(r"[0-9a-f]{64}")


def canonical_bytes(block: Mapping[str, Any]) -> bytes:
    """The block's fields that are present, as sorted-key compact JSON (see the module doc)."""
    return orjson.dumps({k: block[k] for k in FIELDS if k in block}, option=orjson.OPT_SORT_KEYS)


def block_hash(block: Mapping[str, Any]) -> str:
    """Lowercase hex SHA-256 of the whole block's canonical bytes: the next block's ``prev``."""
    return hashlib.sha256(canonical_bytes(block)).hexdigest()


def signing_bytes(block: Mapping[str, Any]) -> bytes:
    return SIGNING_PREFIX + canonical_bytes({k: block[k] for k in FIELDS[:-1]})


def aggregate_block_origin(origin: str) -> str:
    """The ``origin`` of a block anchoring an aggregate by the log ``origin``. An aggregate's
    ``tree_size`` counts checkpoints, not entries: under the log's own origin, a block of two
    shards after one of the log's 20 entries would read as its tree shrinking. Blocks made before
    this suffix name the log itself; receipts holding them still verify (``local_anchor_verifier``)."""
    return origin + AGGREGATE_SUFFIX


def signer_name(origin: str) -> str:
    """The name of the log key that signs a block of ``origin``: the log's, for an aggregate's."""
    return origin.removesuffix(AGGREGATE_SUFFIX)


def make_block(
    *, previous: Mapping[str, Any] | None, time: int, checkpoint: Checkpoint, signer: NoteSigner
) -> dict[str, Any]:
    """The block after ``previous`` (None: the first block) committing to ``checkpoint``."""
    block: dict[str, Any] = {
        "height": 0 if previous is None else int(previous["height"]) + 1,
        "prev": GENESIS_PREV if previous is None else block_hash(previous),
        "time": time,
        "origin": checkpoint.origin,
        "tree_size": checkpoint.size,
        "root": checkpoint.root.hex(),
    }
    block["sig"] = base64.b64encode(signer.sign(signing_bytes(block))).decode("ascii")
    return block


def check_block(block: Mapping[str, Any]) -> None:
    """ValueError naming the first field that is missing or of the wrong form (a receipt's record
    may also carry ``type`` and ``aggregate``, which are not signed)."""
    extra = set(block) - set(FIELDS) - {"type", "aggregate"}
    if extra:
        raise ValueError(f"unknown block fields {sorted(str(k)[:40] for k in extra)}")
    for name in ("height", "time", "tree_size"):
        v = block.get(name)
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < 2**63:
            raise ValueError(f"block {name} must be a non-negative integer")
    for name in ("prev", "root"):
        if not isinstance(block.get(name), str) or not _HEX64.fullmatch(block[name]):
            raise ValueError(f"block {name} must be 64 lowercase hex digits")
    if not isinstance(block.get("origin"), str) or not block["origin"]:
        raise ValueError("block origin must be a non-empty string")
    try:
        block["origin"].encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: no canonical bytes to check a signature over
        raise ValueError("block origin must be valid UTF-8") from None
    sig = b64decode_canonical(block.get("sig"))  # type: ignore[arg-type]
    if len(sig) != 64:
        raise ValueError("block sig must be a base64 Ed25519 signature")


def _log_verifiers(keys: Iterable[str | NoteVerifier]) -> list[NoteVerifier]:
    out: list[NoteVerifier] = []
    for key in keys:
        v = verifier_from_key(key) if isinstance(key, str) else key
        if not isinstance(v, CosignatureVerifier):
            out.append(v)
    return out


def signed_by(block: Mapping[str, Any], keys: Iterable[str | NoteVerifier]) -> str | None:
    """The name of the trusted log key (named after the block's origin, less ``AGGREGATE_SUFFIX``)
    that signed it, or None."""
    check_block(block)
    message, sig = signing_bytes(block), base64.b64decode(block["sig"])
    for v in _log_verifiers(keys):
        if v.name == signer_name(block["origin"]) and v.verify(message, sig):
            return v.name
    return None


def verify_chain(blocks: Sequence[Mapping[str, Any]], keys: Iterable[str | NoteVerifier]) -> list[str]:
    """Every problem of a whole chain, first block first; an empty list means it verifies.

    The chain must start at height 0 and count up by one, link each block to the hash of the one
    before, carry a valid signature by a trusted log key, never go back in time and never shrink
    the tree of an origin. An aggregate's size (an origin ending in ``AGGREGATE_SUFFIX``) is its
    number of shards, not a tree's: it falls when a shard is frozen, and is not compared.
    """
    trusted = _log_verifiers(keys)
    problems: list[str] = []
    previous: Mapping[str, Any] | None = None
    sizes: dict[str, int] = {}
    for i, block in enumerate(blocks):
        try:
            check_block(block)
        except ValueError as e:
            problems.append(f"block {i}: {e}")
            previous = None
            continue
        if block["height"] != i:
            problems.append(f"block {i}: height is {block['height']}")
        want = GENESIS_PREV if i == 0 else (block_hash(previous) if previous is not None else None)
        if want is not None and block["prev"] != want:
            problems.append(f"block {i}: prev does not hash the block before it")
        if signed_by(block, trusted) is None:
            problems.append(f"block {i}: no valid signature by a trusted log key")
        if previous is not None and block["time"] < previous["time"]:
            problems.append(f"block {i}: time goes back")
        origin = block["origin"]
        if not origin.endswith(AGGREGATE_SUFFIX):
            if block["tree_size"] < sizes.get(origin, 0):
                problems.append(f"block {i}: tree of {origin} shrinks")
            sizes[origin] = max(sizes.get(origin, 0), block["tree_size"])
        previous = block
    return problems


def local_anchor_verifier(keys: Iterable[str | NoteVerifier]) -> AnchorVerifier:
    """An AnchorVerifier for ``merkle.verdict.verify_receipt``: the record (a block with ``type:
    local``) is signed by a trusted log key named after the block's origin, and names the target's
    tree size and root: the receipt's checkpoint (then also its origin), or the aggregate that
    includes it (then the block's origin is the aggregating log's followed by ``AGGREGATE_SUFFIX``,
    or, in blocks made before that suffix, the log's alone). Its time is the block's.
    One block cannot show its place in the chain: ``verify_chain`` audits the whole chain."""
    trusted = _log_verifiers(keys)

    def verify(anchor: Anchor, target: AnchorTarget) -> AnchorVerdict:
        block = {k: v for k, v in anchor.fields().items() if k not in ("type", "aggregate")}
        name = signed_by(block, trusted)
        if name is None:
            why = "the block is not signed by a trusted key named after its origin"
            return AnchorVerdict(Status.FAILED, why)
        cp = target.checkpoint
        if target.aggregate is None and block["origin"] != cp.origin:
            return AnchorVerdict(Status.FAILED, f"the block is of log {block['origin']!r}, not {cp.origin!r}")
        if (block["tree_size"], block["root"]) != (target.size, target.root.hex()):
            return AnchorVerdict(Status.FAILED, "the block commits to another tree")
        try:
            when = datetime.fromtimestamp(block["time"], UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        except (OverflowError, OSError, ValueError):
            when = f"time {block['time']}"
        of = f", for an aggregate of {target.size} checkpoints" if target.aggregate is not None else ""
        return AnchorVerdict(
            Status.OK, f"block {block['height']} of the local chain{of}, signed by {name} at {when}",
            time=block["time"],
        )

    return verify
