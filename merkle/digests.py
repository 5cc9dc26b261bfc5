"""Digests and log entries (SPEC §1, format v2): `blake3:` / `sha256:` strings, multihash, and the
hiding commitment that goes into the log.

    entry      = 0x02 || commitment
    commitment = SHA-256("notar.entry.v2" || 0x00 || salt || multihash || u8(len(subject)) || subject)

`salt` is always 16 bytes (there is no unsalted mode); `subject` is the tenant's name, UTF-8 of 1 to
64 bytes. An entry hides its digest: nothing but the receipt's digest, salt and subject rebuilds it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import blake3

SALT_SIZE = 16
SUBJECT_MAX = 64
ENTRY_NOTAR = 0x02
"""Type byte of a notar commitment entry."""
ENTRY_SCITT = 0x03
"""Type byte reserved for SCITT signed statements (SPEC §12); merkle does not interpret them."""
ENTRY_SIZE = 33
ENTRY_DOMAIN = b"notar.entry.v2\x00"
_CODES = {"blake3": 0x1E, "sha256": 0x12}
_NAMES = {code: name for name, code in _CODES.items()}
_MULTIHASH_PREFIXES = {name: bytes((code, 32)) for name, code in _CODES.items()}
_MULTIHASH_SIZE = 34
_MULTIHASH_CODES = bytes(_CODES.values())
_DIGEST_RE = re.compile(r"(blake3|sha256):([0-9a-f]{64})")
_COMMITMENT = hashlib.sha256(ENTRY_DOMAIN)  # copied per entry: the domain is hashed once
_TYPE = bytes((ENTRY_NOTAR,))


@dataclass(frozen=True)
class Digest:
    """A 32-byte document digest and the algorithm that made it."""

    algorithm: str
    value: bytes

    def __post_init__(self) -> None:
        if self.algorithm not in _CODES:
            raise ValueError(f"unknown digest algorithm {self.algorithm!r}: use blake3 or sha256")
        if not isinstance(self.value, bytes) or len(self.value) != 32:
            raise ValueError("a digest value must be 32 bytes")

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.value.hex()}"

    @property
    def multihash(self) -> bytes:
        return _MULTIHASH_PREFIXES[self.algorithm] + self.value


def parse_digest(text: object) -> Digest:
    """Parse `blake3:<64 lowercase hex>` or `sha256:<64 lowercase hex>`; anything else is ValueError."""
    if not isinstance(text, str):
        raise ValueError("a digest must be a string like blake3:<64 lowercase hex>")
    m = _DIGEST_RE.fullmatch(text)
    if m is None:
        raise ValueError(
            f"not a digest: {text[:80]!r}; expected blake3:<64 lowercase hex> or sha256:<64 lowercase hex>"
        )
    return Digest(m.group(1), bytes.fromhex(m.group(2)))


def is_digest_text(text: str) -> bool:
    """Whether `text` is a digest exactly as `str(Digest)` writes it."""
    return _DIGEST_RE.fullmatch(text) is not None


def parse_multihash(data: bytes) -> tuple[Digest, bytes]:
    """Split a multihash-prefixed byte string into its digest and the bytes after it."""
    if not isinstance(data, bytes) or len(data) < 34:
        raise ValueError("a multihash needs at least 34 bytes")
    name = _NAMES.get(data[0])
    if name is None or data[1] != 32:
        raise ValueError(f"unsupported multihash code 0x{data[0]:02x} length {data[1]}")
    return Digest(name, data[2:34]), data[34:]


def subject_bytes(subject: object) -> bytes:
    """The UTF-8 of a subject (a tenant name); ValueError unless it is a str of 1 to 64 UTF-8 bytes."""
    if not isinstance(subject, str):
        raise ValueError(f"a subject must be a string (the tenant's name), not {type(subject).__name__}")
    try:
        data = subject.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate
        raise ValueError(f"the subject {subject[:80]!r} is not valid UTF-8") from None
    if not 1 <= len(data) <= SUBJECT_MAX:
        raise ValueError(f"a subject is 1 to {SUBJECT_MAX} bytes of UTF-8, not {len(data)}")
    return data


def _check_salt(salt: object) -> bytes:
    if not isinstance(salt, bytes) or len(salt) != SALT_SIZE:
        got = f"{len(salt)} bytes" if isinstance(salt, bytes) else type(salt).__name__
        raise ValueError(f"a salt is exactly {SALT_SIZE} bytes, not {got}")
    return salt


def make_entry(digest: Digest, salt: bytes, subject: str) -> bytes:
    """The 33-byte v2 log entry of `digest` notarized with `salt` by `subject` (module doc)."""
    if not isinstance(digest, Digest):
        raise ValueError("make_entry needs a Digest (see parse_digest)")
    tail = subject_bytes(subject)
    h = _COMMITMENT.copy()
    h.update(_check_salt(salt) + digest.multihash + bytes((len(tail),)) + tail)
    return _TYPE + h.digest()


def make_entries(digests: Sequence[Digest], salts: Sequence[bytes], subject: str) -> list[bytes]:
    """`make_entry` of each digest with its salt, all by one subject (one request's batch)."""
    if len(digests) != len(salts):
        raise ValueError(f"{len(digests)} digests but {len(salts)} salts")
    if not set(map(type, digests)) <= {Digest} and not all(isinstance(d, Digest) for d in digests):
        raise ValueError("make_entries needs Digests (see parse_digest)")
    return entries_of(multihashes(digests), salts, subject)


def multihashes(digests: Sequence[Digest]) -> list[bytes]:
    """`Digest.multihash` of each digest, in one pass."""
    prefixes = _MULTIHASH_PREFIXES
    return [prefixes[d.algorithm] + d.value for d in digests]


def entries_of(multihashes: Sequence[bytes], salts: Sequence[bytes], subject: str) -> list[bytes]:
    """The entries of `make_entries` from the digests' multihashes (`multihashes`), for a caller
    that has them already (the sequencer: its tenant index needs them too). ValueError unless each
    multihash is a 34-byte blake3 or sha256 multihash and each salt 16 bytes.

    The checks are whole-batch passes in C, and the loop does one SHA-256 per entry over a copy
    of the domain's state: the sequencer makes up to 20,000 entries a batch, where a check per
    entry in Python cost a third of the commitment itself."""
    n = len(multihashes)
    if n != len(salts):
        raise ValueError(f"{n} multihashes but {len(salts)} salts")
    subj = subject_bytes(subject)
    if not set(map(type, salts)) <= {bytes} or not set(map(len, salts)) <= {SALT_SIZE}:
        for s in salts:
            _check_salt(s)
    joined = b"".join(multihashes) if set(map(type, multihashes)) <= {bytes} else b""
    if (
        len(joined) != _MULTIHASH_SIZE * n
        or joined[1::_MULTIHASH_SIZE] != b"\x20" * n
        or joined[0::_MULTIHASH_SIZE].translate(None, _MULTIHASH_CODES)
    ):
        raise ValueError("a multihash is 34 bytes: a blake3 (0x1e) or sha256 (0x12) code, 32, the digest")
    tail = bytes((len(subj),)) + subj
    copy = _COMMITMENT.copy
    out = []
    for s, m in zip(salts, multihashes, strict=True):
        h = copy()
        h.update(s + m + tail)
        out.append(_TYPE + h.digest())
    return out


def parse_entry(entry: bytes) -> int:
    """The type byte of a log entry found in the log: `ENTRY_NOTAR` (then exactly 33 bytes) or
    `ENTRY_SCITT` (reserved, content not interpreted here); ValueError for anything else,
    naming a v1 entry (a bare multihash, pre-release) as such."""
    if not isinstance(entry, bytes | bytearray | memoryview):
        raise ValueError("a log entry must be bytes")
    entry = bytes(entry)
    if not entry:
        raise ValueError("a log entry is never empty")
    kind = entry[0]
    if kind == ENTRY_NOTAR:
        if len(entry) != ENTRY_SIZE:
            raise ValueError(f"a notar entry (type 0x02) is {ENTRY_SIZE} bytes, not {len(entry)}")
        return kind
    if kind == ENTRY_SCITT:
        if len(entry) < 2:
            raise ValueError("a SCITT entry (type 0x03) carries a statement after its type byte")
        return kind
    if kind in _NAMES and len(entry) in (34, 34 + SALT_SIZE):
        raise ValueError("a v1 entry (multihash || salt, no type byte) is a pre-release format")
    raise ValueError(f"unknown log entry type 0x{kind:02x}")


def hash_document(document: bytes | Iterable[bytes], algorithm: str) -> Digest:
    """The digest of a document given whole or as chunks, with `algorithm` (blake3 or sha256)."""
    chunks = [document] if isinstance(document, bytes | bytearray | memoryview) else document
    if algorithm == "sha256":
        s = hashlib.sha256()
        for chunk in chunks:
            s.update(chunk)
        return Digest("sha256", s.digest())
    if algorithm != "blake3":
        raise ValueError(f"unknown digest algorithm {algorithm!r}: use blake3 or sha256")
    b = blake3.blake3()
    for chunk in chunks:
        b.update(chunk)
    return Digest("blake3", b.digest())
