"""Receipts written in bulk (SPEC §5's canonical form): `write_receipts` of proven entries,
`write_run_receipts` of a run held by column (the sequencer's answer to one caller), each
receipt's bytes exactly `Receipt.to_json()` of it. No object per receipt: the service writes up
to 10,000 per request."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import orjson

from merkle.checkpoint import MAX_TREE_SIZE
from merkle.digests import ENTRY_SIZE, SALT_SIZE, Digest, is_digest_text, subject_bytes
from merkle.hashing import HASH_SIZE
from merkle.receipt import MAX_ANCHORS, MAX_INCLUSION, RECEIPT_FORMAT, Anchor


class Proven(Protocol):
    """An entry's place in the log, proven against a signed checkpoint (what the sequencer answers)."""

    @property
    def index(self) -> int: ...
    @property
    def entry(self) -> bytes: ...
    @property
    def salt(self) -> bytes: ...
    @property
    def tree_size(self) -> int: ...
    @property
    def inclusion(self) -> Sequence[bytes]: ...
    @property
    def checkpoint(self) -> str: ...


_HEAD = b'{"format":' + orjson.dumps(RECEIPT_FORMAT) + b',"digest":"'


class NodeTexts(dict[bytes, bytes]):
    """Each proof node as JSON bytes (its quoted hex), made on first use: a batch's upper nodes
    are in every proof. `write_receipts` makes one per call unless given one to share: entries
    are placed at random in their batch, so the receipts of one request share few nodes (~5.5 per
    receipt new to a 1,000-digest request of a 20,000-entry batch, 2 when its entries were
    contiguous), while all the requests of a batch together share them as before."""

    def __missing__(self, node: bytes) -> bytes:
        if type(node) is not bytes or len(node) != HASH_SIZE:
            raise ValueError(f"an inclusion proof node must be a {HASH_SIZE}-byte hash")
        text = self[node] = b'"' + node.hex().encode() + b'"'
        return text


def _json_text(text: str, what: str) -> str:
    try:
        return orjson.dumps(text).decode("utf-8")
    except TypeError:
        raise ValueError(f"{what} is not valid UTF-8") from None


def write_receipts(
    *,
    subject: str,
    origin: str,
    digests: Sequence[Digest | str],
    proven: Sequence[Proven],
    anchors: Sequence[Anchor] = (),
    head: bytes = b"[",
    tail: bytes = b"]",
    node_texts: NodeTexts | None = None,
) -> bytes:
    """The canonical JSON of one receipt per (digest, proven) pair, all by `subject` in log
    `origin` with the same `anchors`, separated by commas between `head` and `tail` (by default a
    JSON array; `head=b'{"receipts":['`, `tail=b"]}"` gives an API answer with no extra copy).
    Each receipt's bytes are exactly `Receipt.to_json()` of it, which is this function on one.

    Fast for a batch (the service writes up to 10,000 receipts per request): no object per
    receipt, the fragments a batch shares (subject, origin, checkpoint, anchors) serialized once,
    each proof node hexed once (once across calls given the same `node_texts`: any mapping
    made by `NodeTexts()` may be shared, a node's text is a function of the node alone). A digest
    given as text must be as `str(Digest)` writes it. The inputs are the service's own: shapes are
    checked, the entries are not recomputed."""
    if len(digests) != len(proven):
        raise ValueError(f"{len(digests)} digests but {len(proven)} proven entries")
    return _write(
        subject,
        origin,
        digests,
        [p.salt for p in proven],
        [p.entry for p in proven],
        [p.index for p in proven],
        [p.tree_size for p in proven],
        [p.inclusion for p in proven],
        [p.checkpoint for p in proven],
        anchors,
        head,
        tail,
        node_texts,
    )


class ProvenRun(Protocol):
    """Entries proven against one signed checkpoint, held by column (what the sequencer answers
    one caller: services.model.SequencedGroup)."""

    @property
    def indices(self) -> Sequence[int]: ...
    @property
    def entries(self) -> Sequence[bytes]: ...
    @property
    def salts(self) -> bytes: ...
    @property
    def tree_size(self) -> int: ...
    @property
    def checkpoint(self) -> str: ...
    def proofs(self) -> Sequence[Sequence[bytes]]: ...


def write_run_receipts(
    *,
    subject: str,
    origin: str,
    digests: Sequence[Digest | str],
    run: ProvenRun,
    head: bytes = b"[",
    tail: bytes = b"]",
    node_texts: NodeTexts | None = None,
) -> bytes:
    """`write_receipts` of a run's entries (`salts` concatenated, 16 bytes each), without an
    object per entry: the same bytes."""
    n = len(run.indices)
    if len(digests) != n:
        raise ValueError(f"{len(digests)} digests but {n} proven entries")
    salts = run.salts
    if len(salts) != SALT_SIZE * n:
        raise ValueError(f"salts must be {SALT_SIZE} bytes per entry")
    each = [salts[i : i + SALT_SIZE] for i in range(0, len(salts), SALT_SIZE)]
    sizes, notes = [run.tree_size] * n, [run.checkpoint] * n
    return _write(
        subject,
        origin,
        digests,
        each,
        run.entries,
        run.indices,
        sizes,
        run.proofs(),
        notes,
        (),
        head,
        tail,
        node_texts,
    )


def _write(
    subject: str,
    origin: str,
    digests: Sequence[Digest | str],
    salts: Sequence[bytes],
    entries: Sequence[bytes],
    indices: Sequence[int],
    sizes: Sequence[int],
    inclusions: Sequence[Sequence[bytes]],
    checkpoints: Sequence[str],
    anchors: Sequence[Anchor],
    head: bytes,
    tail: bytes,
    node_texts: NodeTexts | None,
) -> bytes:
    """The receipts of `write_receipts`, their fields given by column."""
    if not isinstance(origin, str) or not origin:
        raise ValueError("log.origin must be a non-empty string")
    subject_bytes(subject)
    if len(anchors) > MAX_ANCHORS or not all(isinstance(a, Anchor) for a in anchors):
        raise ValueError(f"anchors must be at most {MAX_ANCHORS} Anchor records")
    at_subject = f'","subject":{_json_text(subject, "subject")},"entry":"'
    at_log = f'","log":{{"origin":{_json_text(origin, "log.origin")},"index":'
    after_anchors = b",".join(a.raw for a in anchors) + b"]}"
    node = (NodeTexts() if node_texts is None else node_texts).__getitem__
    join = b",".join
    out = [head]
    add = out.extend
    last_checkpoint: object = None
    ending = b""
    for d, salt, entry, index, size, inclusion, checkpoint in zip(
        digests, salts, entries, indices, sizes, inclusions, checkpoints, strict=True
    ):
        text = str(d) if isinstance(d, Digest) else d
        if isinstance(d, str) and not is_digest_text(d):
            raise ValueError(f"not a digest: {d[:80]!r}")
        if (
            type(salt) is not bytes
            or len(salt) != SALT_SIZE
            or type(entry) is not bytes
            or len(entry) != ENTRY_SIZE
        ):
            raise ValueError(f"salt must be {SALT_SIZE} bytes and entry {ENTRY_SIZE} bytes")
        if (
            type(index) is not int
            or type(size) is not int
            or not (0 <= index <= MAX_TREE_SIZE and 0 <= size <= MAX_TREE_SIZE)
        ):
            raise ValueError("log.index and log.tree_size must be integers from 0 to 2^63 - 1")
        if len(inclusion) > MAX_INCLUSION:
            raise ValueError(f"log.inclusion has more than {MAX_INCLUSION} hashes")
        if not ending or checkpoint != last_checkpoint:  # a run shares one checkpoint: written once
            if not isinstance(checkpoint, str):
                raise ValueError("checkpoint must be the signed note as text")
            ending = b']},"checkpoint":' + _json_text(checkpoint, "checkpoint").encode() + b',"anchors":['
            ending += after_anchors + b","
            last_checkpoint = checkpoint
        add(
            (
                _HEAD,
                f'{text}","salt":"{salt.hex()}{at_subject}{entry.hex()}{at_log}{index},"tree_size":{size},"inclusion":['.encode(),
                join(map(node, inclusion)),
                ending,
            )
        )
    if len(out) > 1:
        out[-1] = out[-1][:-1]  # no comma after the last receipt
    out.append(tail)
    return b"".join(out)
