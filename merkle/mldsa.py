"""C2SP tlog-cosignature with ML-DSA-44 (FIPS 204): timestamped checkpoint cosignatures, note type 0x06.

The signature bytes are ``u64be(timestamp) || ML-DSA-44(cosigned_message)`` (2,428 bytes), where
``cosigned_message`` is the TLS-encoded structure of the spec::

    "subtree/v1\\n\\0" || u8 len || cosigner name || u64 timestamp || u8 len || origin
                     || u64 start || u64 end || 32-byte root

For a checkpoint ``start`` is 0 and ``end`` its size; unlike the Ed25519 type, the message commits
to the cosigner's name and not to the checkpoint's extension lines. Signing is FIPS 204 pure
ML-DSA with the empty context (the spec names none); keys are the 1,312-byte public key and the
32-byte seed. ML-DSA needs a ``cryptography`` whose backend has it (``mldsa44_available``); without
it, building a signer or verifier raises ``ValueError`` saying so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from typing import Any, Self

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm

from merkle.checkpoint import parse_checkpoint
from merkle.cosignature import (
    MAX_TIMESTAMP,
    TimedCosigner,
    check_timestamp,
    checkpoint_text,
    signature_timestamp,
)
from merkle.note import compute_key_id, format_key, is_valid_key_name, load_signer, read_key

try:  # cryptography 50 has these names; its backend needs OpenSSL >= 3.5 (or AWS-LC) for ML-DSA
    from cryptography.hazmat.primitives.asymmetric.mldsa import MLDSA44PrivateKey, MLDSA44PublicKey
except ImportError:  # pragma: no cover - older cryptography
    MLDSA44PrivateKey = MLDSA44PublicKey = None  # type: ignore[assignment,misc]

SIG_COSIGNATURE_MLDSA44 = 0x06
PUBLIC_KEY_SIZE = 1312
SIGNATURE_SIZE = 8 + 2420  # timestamp || ML-DSA-44 signature
SEED_SIZE = 32
LABEL = b"subtree/v1\n\x00"


@cache
def mldsa44_available() -> bool:
    """Whether the installed ``cryptography`` can sign and verify ML-DSA-44."""
    if MLDSA44PrivateKey is None:
        return False
    try:
        MLDSA44PrivateKey.from_seed_bytes(bytes(SEED_SIZE))
    except UnsupportedAlgorithm:
        return False
    return True


def subtree_message(name: str, timestamp: int, origin: str, start: int, end: int, root: bytes) -> bytes:
    """The ``cosigned_message`` an ML-DSA-44 cosignature signs; ``ValueError`` when a field is out of
    range (names of 1-255 bytes, u64 integers, timestamp 0 for a subtree not starting at 0)."""
    cosigner, log = name.encode("utf-8"), origin.encode("utf-8")
    if not 1 <= len(cosigner) <= 255 or not 1 <= len(log) <= 255:
        raise ValueError("the cosigner name and the origin must be 1 to 255 bytes for ML-DSA-44")
    for value in (timestamp, start, end):
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**64:
            raise ValueError(f"{value!r} is not a uint64")
    if timestamp > MAX_TIMESTAMP or (start and timestamp) or start > end or len(root) != 32:
        raise ValueError("timestamp above 2^63 - 1, a timestamped subtree, start after end or a bad hash")
    return b"".join(
        [
            LABEL,
            bytes([len(cosigner)]),
            cosigner,
            timestamp.to_bytes(8, "big"),
            bytes([len(log)]),
            log,
            start.to_bytes(8, "big"),
            end.to_bytes(8, "big"),
            root,
        ]
    )


def checkpoint_message(name: str, text: str, timestamp: int) -> bytes:
    """``subtree_message`` for the checkpoint body ``text`` (start 0, end its size)."""
    cp = parse_checkpoint(text)
    return subtree_message(name, timestamp, cp.origin, 0, cp.size, cp.root)


@dataclass(frozen=True)
class MLDSA44CosignatureVerifier:
    """Verifies ML-DSA-44 cosignatures of one cosigner (vkey type 0x06); a ``TimestampingVerifier``."""

    SIG_TYPE = SIG_COSIGNATURE_MLDSA44
    name: str
    public_key: bytes
    key_id: int = field(init=False)
    _key: Any = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.public_key) != PUBLIC_KEY_SIZE:
            raise ValueError(f"key {self.name!r}: an ML-DSA-44 public key is {PUBLIC_KEY_SIZE} bytes")
        _require()
        try:
            key = MLDSA44PublicKey.from_public_bytes(self.public_key)
        except ValueError as e:
            raise ValueError(f"key {self.name!r} is not an ML-DSA-44 public key: {e}") from None
        object.__setattr__(self, "_key", key)
        object.__setattr__(self, "key_id", compute_key_id(self.name, self.SIG_TYPE, self.public_key))

    @classmethod
    def from_key(cls, vkey: str) -> Self:
        parsed = read_key(vkey, cls.SIG_TYPE)
        return cls(parsed.name, parsed.key)

    def to_key(self) -> str:
        return format_key(self.name, self.key_id, self.SIG_TYPE, self.public_key)

    def verify_timestamp(self, message: bytes, signature: bytes) -> int | None:
        """The signed time if ``signature`` is valid over the checkpoint body ``message``."""
        if len(signature) != SIGNATURE_SIZE:
            return None
        timestamp = int.from_bytes(signature[:8], "big")
        try:
            signed = checkpoint_message(self.name, message.decode("utf-8"), timestamp)
            self._key.verify(signature[8:], signed)
        except (ValueError, InvalidSignature):  # includes UnicodeDecodeError
            return None
        return timestamp

    def verify(self, message: bytes, signature: bytes) -> bool:
        return self.verify_timestamp(message, signature) is not None

    def timestamp(self, signature: bytes) -> int:
        """The time inside a signature, not verified."""
        return signature_timestamp(signature, SIGNATURE_SIZE, "an ML-DSA-44 cosignature")


@dataclass(frozen=True)
class MLDSA44CosignatureSigner:
    """Cosigns checkpoint bodies with ML-DSA-44 (signer key type 0x06, the 32-byte seed); like
    ``CosignatureSigner``, ``at(timestamp)`` gives the ``NoteSigner``. repr hides the seed."""

    SIG_TYPE = SIG_COSIGNATURE_MLDSA44
    name: str
    seed: bytes = field(repr=False)
    key_id: int = field(init=False)
    public_key: bytes = field(init=False, repr=False)
    _key: Any = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not is_valid_key_name(self.name):
            raise ValueError(f"invalid key name {self.name[:80]!r}")
        if len(self.seed) != SEED_SIZE:
            raise ValueError(f"key {self.name!r}: an ML-DSA-44 seed is {SEED_SIZE} bytes")
        _require()
        key = MLDSA44PrivateKey.from_seed_bytes(self.seed)
        public = key.public_key().public_bytes_raw()
        object.__setattr__(self, "_key", key)
        object.__setattr__(self, "public_key", public)
        object.__setattr__(self, "key_id", compute_key_id(self.name, self.SIG_TYPE, public))

    @classmethod
    def from_key(cls, skey: str) -> Self:
        return load_signer(cls, skey, cls.SIG_TYPE)

    @classmethod
    def generate(cls, name: str) -> Self:
        _require()
        return cls(name, MLDSA44PrivateKey.generate().private_bytes_raw())

    def to_key(self) -> str:
        """The signer key string: secret, keep it private."""
        return format_key(self.name, self.key_id, self.SIG_TYPE, self.seed, private=True)

    def sign_at(self, message: bytes, timestamp: int) -> bytes:
        """``u64be(timestamp) || signature`` over the checkpoint body ``message``."""
        signed = checkpoint_message(self.name, checkpoint_text(message), timestamp)
        return timestamp.to_bytes(8, "big") + bytes(self._key.sign(signed))

    def at(self, timestamp: int) -> TimedCosigner:
        check_timestamp(timestamp)
        return TimedCosigner(self, timestamp)

    def verifier(self) -> MLDSA44CosignatureVerifier:
        return MLDSA44CosignatureVerifier(self.name, self.public_key)


def _require() -> None:
    if not mldsa44_available():
        raise ValueError(
            "ML-DSA-44 is not available: it needs a Python package cryptography with ML-DSA-44 (50.0 "
            "has it) built with OpenSSL >= 3.5 (pip's wheels are)"
        )
