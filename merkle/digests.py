"""Digests (SPEC §1): `blake3:` / `sha256:` strings, multihash, and log entries."""

from __future__ import annotations

import re
from dataclasses import dataclass

SALT_SIZE = 16
_CODES = {"blake3": 0x1E, "sha256": 0x12}
_NAMES = {code: name for name, code in _CODES.items()}
_MULTIHASH_PREFIXES = {name: bytes((code, 32)) for name, code in _CODES.items()}
_DIGEST_RE = re.compile(r"(blake3|sha256):([0-9a-f]{64})")


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


def parse_multihash(data: bytes) -> tuple[Digest, bytes]:
    """Split a multihash-prefixed byte string into its digest and the bytes after it."""
    if not isinstance(data, bytes) or len(data) < 34:
        raise ValueError("a multihash needs at least 34 bytes")
    name = _NAMES.get(data[0])
    if name is None or data[1] != 32:
        raise ValueError(f"unsupported multihash code 0x{data[0]:02x} length {data[1]}")
    return Digest(name, data[2:34]), data[34:]


def make_entry(digest: Digest, salt: bytes = b"") -> bytes:
    """entry = multihash(digest) || salt, the salt being 16 bytes or empty."""
    if not isinstance(salt, bytes) or len(salt) not in (0, SALT_SIZE):
        raise ValueError(f"a salt is {SALT_SIZE} bytes or empty")
    return digest.multihash + salt


def parse_entry(entry: bytes) -> tuple[Digest, bytes]:
    """The digest and salt of a log entry; ValueError for anything SPEC §1 does not allow."""
    digest, salt = parse_multihash(entry)
    if len(salt) not in (0, SALT_SIZE):
        raise ValueError(f"a log entry's salt is {SALT_SIZE} bytes or empty, got {len(salt)}")
    return digest, salt
