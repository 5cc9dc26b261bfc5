"""Receipts (SPEC §5, notar.receipt.v2): the one immutable `Receipt` type, and the one place where
receipts are read (`Receipt.from_json`) and written (`Receipt.to_json`, `write_receipts`).

Reading checks shape only: members, types, hex, sizes. Whether the entry matches its digest, the
proof its checkpoint, the signatures their keys is meaning, checked by `merkle.verdict`.

Canonical form: UTF-8 JSON, no insignificant whitespace, non-ASCII characters as they are, members
in the order `format, digest, salt, subject, entry, log {origin, index, tree_size, inclusion},
checkpoint, anchors`; each anchor's members in the order they came. Two receipts are the same
receipt when their canonical forms are byte-identical.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from merkle import strictjson
from merkle.checkpoint import MAX_TREE_SIZE
from merkle.digests import (
    ENTRY_SIZE,
    SALT_SIZE,
    Digest,
    is_digest_text,
    make_entry,
    parse_digest,
    subject_bytes,
)
from merkle.hashing import HASH_SIZE

RECEIPT_FORMAT = "notar.receipt.v2"
V1_FORMAT = "notar.receipt.v1"
MAX_ANCHORS = 16
MAX_INCLUSION = 64
MEMBERS = ("format", "digest", "salt", "subject", "entry", "log", "checkpoint", "anchors")
LOG_MEMBERS = ("origin", "index", "tree_size", "inclusion")
_HEX = re.compile(r"[0-9a-f]*")


def _utf8(text: str, what: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: not representable in a JSON document
        raise ValueError(f"{what} is not valid UTF-8") from None


@dataclass(frozen=True)
class Anchor:
    """One anchor record (SPEC §4), immutable: `raw` is its canonical JSON (compact, members in the
    order they came, non-ASCII as is) and `type` its kind. A kind merkle does not know is carried
    opaquely, byte for byte; `fields()` gives any record's members to read."""

    raw: bytes
    type: str = field(init=False)

    def __post_init__(self) -> None:
        if not isinstance(self.raw, bytes):
            raise ValueError("an anchor record's raw JSON must be bytes")
        try:
            value = orjson.loads(self.raw)
        except orjson.JSONDecodeError as e:
            raise ValueError(f"an anchor record is not JSON: {e}") from None
        if not isinstance(value, dict):
            raise ValueError("an anchor record is a JSON object")
        kind = value.get("type")
        if not isinstance(kind, str) or not kind:
            raise ValueError("an anchor record needs a non-empty string member 'type'")
        if orjson.dumps(value) != self.raw:
            raise ValueError("an anchor record's raw JSON is not in canonical form")
        object.__setattr__(self, "type", kind)

    @classmethod
    def from_obj(cls, record: Mapping[str, Any]) -> Anchor:
        """The record of a JSON object given as a mapping (its members kept in order); ValueError
        for anything that is not a JSON object with a string `type`."""
        if not isinstance(record, Mapping):
            raise ValueError("an anchor record is a JSON object")
        value = dict(record)
        try:
            raw = orjson.dumps(value)
        except TypeError as e:  # orjson.JSONEncodeError: a value that has no JSON form
            raise ValueError(f"an anchor record holds a value that is not JSON: {e}") from None
        if orjson.loads(raw) != value:
            raise ValueError("an anchor record holds a value that is not JSON (tuple, NaN, ...)")
        return cls(raw)

    def fields(self) -> dict[str, Any]:
        """The record's members, freshly parsed: the caller may change the copy."""
        result: dict[str, Any] = orjson.loads(self.raw)
        return result


@dataclass(frozen=True)
class Receipt:
    """A receipt: `digest` notarized with `salt` by `subject` as `entry` at `index` of the log
    `origin`, proven by `inclusion` in the tree of `tree_size` that the signed note `checkpoint`
    states, and the `anchors` of that checkpoint. Constructing one checks shape (ValueError naming
    the member); `entry` is not recomputed here: verification says whether it matches."""

    digest: Digest
    salt: bytes
    subject: str
    entry: bytes
    origin: str
    index: int
    tree_size: int
    inclusion: tuple[bytes, ...]
    checkpoint: str
    anchors: tuple[Anchor, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.digest, Digest):
            raise ValueError("digest must be a Digest")
        if not isinstance(self.salt, bytes) or len(self.salt) != SALT_SIZE:
            raise ValueError(f"salt must be {SALT_SIZE} bytes")
        try:
            subject_bytes(self.subject)
        except ValueError as e:
            raise ValueError(f"subject: {e}") from None
        if not isinstance(self.entry, bytes) or len(self.entry) != ENTRY_SIZE:
            raise ValueError(f"entry must be {ENTRY_SIZE} bytes")
        if not isinstance(self.origin, str) or not self.origin:
            raise ValueError("log.origin must be a non-empty string")
        _utf8(self.origin, "log.origin")
        for name, value in (("log.index", self.index), ("log.tree_size", self.tree_size)):
            if type(value) is not int or not 0 <= value <= MAX_TREE_SIZE:
                raise ValueError(f"{name} must be an integer from 0 to 2^63 - 1")
        inclusion = tuple(self.inclusion)
        if len(inclusion) > MAX_INCLUSION:
            raise ValueError(f"log.inclusion has more than {MAX_INCLUSION} hashes")
        for i, h in enumerate(inclusion):
            if not isinstance(h, bytes) or len(h) != HASH_SIZE:
                raise ValueError(f"log.inclusion[{i}] must be a {HASH_SIZE}-byte hash")
        object.__setattr__(self, "inclusion", inclusion)
        if not isinstance(self.checkpoint, str):
            raise ValueError("checkpoint must be the signed note as text")
        _utf8(self.checkpoint, "checkpoint")
        anchors = tuple(self.anchors)
        if len(anchors) > MAX_ANCHORS:
            raise ValueError(f"a receipt carries at most {MAX_ANCHORS} anchors, not {len(anchors)}")
        if not all(isinstance(a, Anchor) for a in anchors):
            raise ValueError("anchors must be Anchor records (see Anchor.from_obj)")
        object.__setattr__(self, "anchors", anchors)

    @classmethod
    def build(
        cls,
        *,
        digest: Digest,
        salt: bytes,
        subject: str,
        origin: str,
        index: int,
        tree_size: int,
        inclusion: Sequence[bytes],
        checkpoint: str,
        anchors: Sequence[Anchor | Mapping[str, Any]] = (),
    ) -> Receipt:
        """The receipt of `digest` notarized with `salt` by `subject`, its entry computed."""
        return cls(
            digest,
            salt,
            subject,
            make_entry(digest, salt, subject),
            origin,
            index,
            tree_size,
            tuple(inclusion),
            checkpoint,
            _anchors(anchors),
        )

    def upgraded(
        self,
        *,
        checkpoint: str,
        tree_size: int,
        inclusion: Sequence[bytes],
        anchors: Sequence[Anchor | Mapping[str, Any]] = (),
    ) -> Receipt:
        """The same notarization proven in a later checkpoint (SPEC §5): digest, salt, subject,
        entry, origin and index kept; ValueError for a smaller tree. Whether the new checkpoint is
        consistent with the old one under trusted keys is for the caller to check."""
        if type(tree_size) is int and tree_size < self.tree_size:
            raise ValueError(f"an upgrade never goes to a smaller tree ({tree_size} < {self.tree_size})")
        return dataclasses.replace(
            self,
            checkpoint=checkpoint,
            tree_size=tree_size,
            inclusion=tuple(inclusion),
            anchors=_anchors(anchors),
        )

    @classmethod
    def from_json(cls, data: bytes | str) -> Receipt:
        """Read a receipt strictly: ValueError with a one-line reason naming the member when it is
        not JSON, names a member twice anywhere, or is not a notar.receipt.v2 receipt in shape."""
        return cls.from_obj(strictjson.loads(data))

    @classmethod
    def from_obj(cls, obj: object) -> Receipt:
        """`from_json` of a document that is already parsed (a mapping of JSON values)."""
        if not isinstance(obj, Mapping):
            raise ValueError(f"a receipt is a JSON object, not {_json_type(obj)}")
        if "format" not in obj:
            raise ValueError("the member 'format' is missing")
        fmt = obj["format"]
        if fmt == V1_FORMAT:
            raise ValueError(
                f"{V1_FORMAT} is a pre-release format that is not accepted: "
                f"this verifier reads {RECEIPT_FORMAT}"
            )
        if fmt != RECEIPT_FORMAT:
            shown = repr(fmt[:60]) if isinstance(fmt, str) else _json_type(fmt)
            raise ValueError(f"format {shown} is not {RECEIPT_FORMAT!r}")
        _members(obj, MEMBERS, "")
        log = obj["log"]
        if not isinstance(log, Mapping):
            raise ValueError(f"log must be an object, not {_json_type(log)}")
        _members(log, LOG_MEMBERS, "log.")
        try:
            digest = parse_digest(obj["digest"])
        except ValueError as e:
            raise ValueError(f"digest: {e}") from None
        subject = obj["subject"]
        if not isinstance(subject, str):
            raise ValueError(f"subject must be a string, not {_json_type(subject)}")
        origin, checkpoint = log["origin"], obj["checkpoint"]
        if not isinstance(origin, str):
            raise ValueError(f"log.origin must be a string, not {_json_type(origin)}")
        if not isinstance(checkpoint, str):
            raise ValueError(f"checkpoint must be the signed note as a string, not {_json_type(checkpoint)}")
        for name in ("index", "tree_size"):
            if type(log[name]) is not int:
                raise ValueError(f"log.{name} must be an integer, not {_json_type(log[name])}")
        inclusion = log["inclusion"]
        if not isinstance(inclusion, list):
            raise ValueError(f"log.inclusion must be a list of hashes, not {_json_type(inclusion)}")
        if len(inclusion) > MAX_INCLUSION:
            raise ValueError(f"log.inclusion has more than {MAX_INCLUSION} hashes")
        anchors = obj["anchors"]
        if not isinstance(anchors, list):
            raise ValueError(f"anchors must be a list, not {_json_type(anchors)}")
        if len(anchors) > MAX_ANCHORS:
            raise ValueError(f"a receipt carries at most {MAX_ANCHORS} anchors, not {len(anchors)}")
        records = []
        for i, a in enumerate(anchors):
            try:
                records.append(Anchor.from_obj(a))
            except ValueError as e:
                raise ValueError(f"anchors[{i}]: {e}") from None
        return cls(
            digest,
            _hex(obj["salt"], "salt", SALT_SIZE),
            subject,
            _hex(obj["entry"], "entry", ENTRY_SIZE),
            origin,
            log["index"],
            log["tree_size"],
            tuple(_hex(h, f"log.inclusion[{i}]", HASH_SIZE) for i, h in enumerate(inclusion)),
            checkpoint,
            tuple(records),
        )

    def to_json(self) -> bytes:
        """The canonical form (module doc)."""
        return write_receipts(
            subject=self.subject,
            origin=self.origin,
            digests=(self.digest,),
            proven=(self,),
            anchors=self.anchors,
            head=b"",
            tail=b"",
        )


def _anchors(anchors: Sequence[Anchor | Mapping[str, Any]]) -> tuple[Anchor, ...]:
    return tuple(a if isinstance(a, Anchor) else Anchor.from_obj(a) for a in anchors)


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, Mapping):
        return "an object"
    return type(value).__name__


def _members(obj: Mapping[Any, Any], names: tuple[str, ...], prefix: str) -> None:
    unknown = [k for k in obj if k not in names]
    if unknown:
        raise ValueError(f"unknown member {prefix + str(unknown[0])[:60]!r}")
    missing = [k for k in names if k not in obj]
    if missing:
        raise ValueError(f"the member '{prefix}{missing[0]}' is missing")


def _hex(value: object, what: str, size: int) -> bytes:
    if not isinstance(value, str) or len(value) != 2 * size or not _HEX.fullmatch(value):
        raise ValueError(f"{what} must be {2 * size} lowercase hex digits ({size} bytes)")
    return bytes.fromhex(value)


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
