"""Receipts (SPEC §5, notar.receipt.v2): the one immutable `Receipt` type, and the one place where
receipts are read (`Receipt.from_json`) and written (`Receipt.to_json`, and in bulk
`merkle.receipt_writer.write_receipts`).

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
from typing import Any

import orjson

from merkle import strictjson
from merkle.checkpoint import MAX_TREE_SIZE
from merkle.digests import (
    ENTRY_SIZE,
    SALT_SIZE,
    Digest,
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
        from merkle.receipt_writer import write_receipts  # it writes Anchors: imported once used

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
