"""C2SP tlog-cosignature/v1 with Ed25519: timestamped checkpoint signatures, note type 0x04.

The signature bytes are ``u64be(timestamp) || Ed25519(message)``, where the message is
``cosignature/v1\\ntime <timestamp>\\n`` followed by the whole checkpoint body. The key ID uses
type byte 0x04. Only valid checkpoint bodies are signed or accepted; the timestamp (POSIX
seconds) is at most 2^63 - 1. Signers and verifiers plug into ``merkle.note``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from merkle.checkpoint import parse_checkpoint
from merkle.note import (
    Ed25519SignerKey,
    Ed25519VerifierKey,
    Verifier,
    ed25519_verify,
    parse_verifier_key,
)

if TYPE_CHECKING:
    from merkle.mldsa import MLDSA44CosignatureVerifier

SIG_COSIGNATURE_V1 = 0x04
MAX_TIMESTAMP = 2**63 - 1
_SIGNATURE_SIZE = 8 + 64


def cosigned_message(text: str, timestamp: int) -> bytes:
    """The bytes an Ed25519 v1 cosignature signs; ``ValueError`` unless ``text`` is a
    checkpoint body and ``timestamp`` is in [0, 2^63 - 1]."""
    check_timestamp(timestamp)
    parse_checkpoint(text)
    return f"cosignature/v1\ntime {timestamp}\n{text}".encode()


def signature_timestamp(
    signature: bytes, size: int = _SIGNATURE_SIZE, what: str = "an Ed25519 cosignature"
) -> int:
    """The timestamp inside cosignature bytes (after the key ID) of ``size`` bytes (Ed25519 v1 by
    default); not verified."""
    if len(signature) != size:
        raise ValueError(f"{what} is {size} bytes, not {len(signature)}")
    timestamp = int.from_bytes(signature[:8], "big")
    if timestamp > MAX_TIMESTAMP:
        raise ValueError(f"cosignature timestamp {timestamp} exceeds 2^63 - 1")
    return timestamp


@dataclass(frozen=True)
class CosignatureVerifier(Ed25519VerifierKey):
    """Verifies Ed25519 cosignature/v1 signatures of one cosigner (vkey type 0x04)."""

    SIG_TYPE = SIG_COSIGNATURE_V1

    def verify_timestamp(self, message: bytes, signature: bytes) -> int | None:
        """The signed time if ``signature`` is valid over the checkpoint body ``message``."""
        try:
            timestamp = signature_timestamp(signature)
            signed = cosigned_message(message.decode("utf-8"), timestamp)
        except ValueError:  # includes UnicodeDecodeError
            return None
        return timestamp if ed25519_verify(self._key, signed, signature[8:]) else None

    def verify(self, message: bytes, signature: bytes) -> bool:
        return self.verify_timestamp(message, signature) is not None

    def timestamp(self, signature: bytes) -> int:
        """The time inside a signature, not verified (see ``signature_timestamp``)."""
        return signature_timestamp(signature)


@dataclass(frozen=True)
class CosignatureSigner(Ed25519SignerKey):
    """Signs checkpoint bodies as an Ed25519 v1 cosigner (signer key type 0x04).

    It needs a time, so ``at(timestamp)`` gives the ``NoteSigner`` for ``sign_note``.
    """

    SIG_TYPE = SIG_COSIGNATURE_V1

    def sign_at(self, message: bytes, timestamp: int) -> bytes:
        """``u64be(timestamp) || signature``; ``ValueError`` unless ``message`` is a checkpoint."""
        signed = cosigned_message(checkpoint_text(message), timestamp)
        return timestamp.to_bytes(8, "big") + self._key.sign(signed)

    def at(self, timestamp: int) -> TimedCosigner:
        """A note signer that cosigns as of ``timestamp`` (POSIX seconds)."""
        check_timestamp(timestamp)
        return TimedCosigner(self, timestamp)

    def verifier(self) -> CosignatureVerifier:
        return CosignatureVerifier(self.name, self.public_key)


class SignsAt(Protocol):
    """A cosigner: its key's name and ID, and signatures as of a time."""

    @property
    def name(self) -> str: ...
    @property
    def key_id(self) -> int: ...
    def sign_at(self, message: bytes, timestamp: int) -> bytes: ...


@dataclass(frozen=True)
class TimedCosigner:
    """A cosigner (Ed25519 or ML-DSA-44) bound to one timestamp: a ``NoteSigner``."""

    cosigner: SignsAt
    timestamp: int

    @property
    def name(self) -> str:
        return self.cosigner.name

    @property
    def key_id(self) -> int:
        return self.cosigner.key_id

    def sign(self, message: bytes) -> bytes:
        return self.cosigner.sign_at(message, self.timestamp)


def generate_cosigner(name: str) -> tuple[str, str]:
    """A new cosigner key pair for ``name``: (signer key string, verifier key string), type 0x04."""
    signer = CosignatureSigner.generate(name)
    return signer.to_key(), signer.verifier().to_key()


def verifier_from_key(vkey: str) -> Verifier | CosignatureVerifier | MLDSA44CosignatureVerifier:
    """A verifier for a vkey of type 0x01 (Ed25519), 0x04 (Ed25519 cosignature/v1) or 0x06 (ML-DSA-44
    cosignature, when ``cryptography`` has ML-DSA); else ``ValueError``."""
    from merkle.mldsa import SIG_COSIGNATURE_MLDSA44, MLDSA44CosignatureVerifier  # it imports this module

    sig_type = parse_verifier_key(vkey).sig_type
    if sig_type == SIG_COSIGNATURE_V1:
        return CosignatureVerifier.from_key(vkey)
    if sig_type == SIG_COSIGNATURE_MLDSA44:
        return MLDSA44CosignatureVerifier.from_key(vkey)
    return Verifier.from_key(vkey)


def checkpoint_text(message: bytes) -> str:
    """The note text a cosigner signs, as a str; ``ValueError`` unless valid UTF-8."""
    try:
        return message.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("a cosigned checkpoint must be valid UTF-8") from None


def check_timestamp(timestamp: int) -> None:
    """``ValueError`` unless ``timestamp`` is an int in [0, 2^63 - 1]."""
    if isinstance(timestamp, bool) or not isinstance(timestamp, int):
        raise ValueError(f"cosignature timestamp {timestamp!r} is not an int")
    if not 0 <= timestamp <= MAX_TIMESTAMP:
        raise ValueError(f"cosignature timestamp {timestamp} is not in [0, 2^63 - 1]")
