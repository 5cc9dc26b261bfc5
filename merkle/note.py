"""C2SP signed notes (c2sp.org/signed-note) with Ed25519 keys, as golang.org/x/mod/sumdb/note.

A note is a text ending in a newline, a blank line, then one or more lines
``— <key name> base64(key ID || signature)``. Parsing is strict: a malformed note, key string
or key name raises ``ValueError``; a well-formed signature that does not verify is reported in
``OpenedNote.invalid``, never raised. Other signature types plug in through the ``NoteSigner``
and ``NoteVerifier`` protocols (``merkle.cosignature`` adds type 0x04).
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import ClassVar, Protocol, Self, TypeVar

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

SIG_ED25519 = 0x01
MAX_SIGNATURES = 100  # as golang.org/x/mod/sumdb/note; the spec asks to accept at least 16

_DASH = "— "  # em dash U+2014, space
PRIVATE_KEY_PREFIX = "PRIVATE+KEY+"  # signer key strings start with it
_HEX_KEY_ID = re.compile(r"[0-9a-f]{8}")
_BASE64 = re.compile(r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?")
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f]")  # ASCII controls other than newline


class NoteSigner(Protocol):
    """Makes one signature (without the key ID) over a note text."""

    @property
    def name(self) -> str: ...
    @property
    def key_id(self) -> int: ...
    def sign(self, message: bytes) -> bytes: ...


class NoteVerifier(Protocol):
    """Checks signatures of the key (name, key_id); ``verify`` returns False, never raises."""

    @property
    def name(self) -> str: ...
    @property
    def key_id(self) -> int: ...
    def verify(self, message: bytes, signature: bytes) -> bool: ...


def b64decode_canonical(text: str) -> bytes:
    """Decode standard padded base64 (RFC 4648 §4) only if re-encoding gives ``text`` back."""
    if not isinstance(text, str) or not _BASE64.fullmatch(text):
        raise ValueError(f"not standard padded base64: {str(text)[:80]!r}")
    raw = base64.b64decode(text)
    if base64.b64encode(raw).decode("ascii") != text:
        raise ValueError(f"non-canonical base64 (padding bits set): {text[:80]!r}")
    return raw


def is_valid_key_name(name: str) -> bool:
    """Non-empty valid UTF-8 with no Unicode space, no ``+`` and no control character."""
    return (
        isinstance(name, str)
        and bool(name)
        and "+" not in name
        and not _CONTROL.search(name)
        and not any(c.isspace() for c in name)
        and _is_utf8(name)
    )


def check_note_text(text: str) -> None:
    """``ValueError`` unless ``text`` is valid UTF-8, ends in a newline and has no ASCII
    control character but newline."""
    if not isinstance(text, str) or not text.endswith("\n"):
        raise ValueError("a note text must be a str ending in a newline")
    if not _is_utf8(text) or _CONTROL.search(text):
        raise ValueError("a note text must be valid UTF-8 without control characters")


def compute_key_id(name: str, sig_type: int, public_key: bytes) -> int:
    """SHA-256(name || 0x0A || sig_type || public_key)[:4], as a big-endian uint32."""
    _check_name(name)
    data = name.encode("utf-8") + b"\n" + bytes([sig_type]) + public_key
    return int.from_bytes(hashlib.sha256(data).digest()[:4], "big")


@dataclass(frozen=True)
class Signature:
    """One signature line: key name, key ID and the signature bytes after the key ID."""

    name: str
    key_id: int
    signature: bytes

    def __post_init__(self) -> None:
        _check_name(self.name)
        if not 0 <= self.key_id <= 0xFFFFFFFF or not self.signature:
            raise ValueError(f"signature by {self.name!r}: key ID not a uint32, or no bytes")

    def line(self) -> str:
        """The signature line, final newline included."""
        raw = self.key_id.to_bytes(4, "big") + self.signature
        return f"{_DASH}{self.name} {base64.b64encode(raw).decode('ascii')}\n"


@dataclass(frozen=True)
class Note:
    """A note split into its text and its signatures (unverified), in order."""

    text: str
    signatures: tuple[Signature, ...]


@dataclass(frozen=True)
class OpenedNote:
    """A note checked against trusted verifiers.

    ``verified``: trusted keys' signatures that verify; ``invalid``: trusted keys' signatures
    that do not (the spec says to reject the note then); ``unverified``: signatures of other
    keys, which the spec says to ignore.
    """

    text: str
    verified: tuple[Signature, ...]
    unverified: tuple[Signature, ...]
    invalid: tuple[Signature, ...]

    @property
    def ok(self) -> bool:
        """At least one trusted signature verifies and none fails."""
        return bool(self.verified) and not self.invalid


def parse_note(note: str | bytes) -> Note:
    """Split a signed note into text and signatures strictly, verifying nothing.

    ``ValueError`` for invalid UTF-8, control characters, no blank line or final newline, a
    malformed signature line, more than ``MAX_SIGNATURES`` lines, or two lines with the same
    key name and ID (Go drops repeats; we refuse the ambiguity).
    """
    if isinstance(note, bytes | bytearray):
        try:
            note = bytes(note).decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError("malformed note: not valid UTF-8") from None
    check_note_text(note)
    split = note.rfind("\n\n")
    if split < 0:
        raise ValueError("malformed note: no blank line before the signatures")
    text, block = note[: split + 1], note[split + 2 :]
    if not block:
        raise ValueError("malformed note: no signature lines")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise ValueError(f"malformed note: more than {MAX_SIGNATURES} signatures")
    signatures: list[Signature] = []
    for line in lines:
        sig = _parse_signature_line(line)
        if any((s.name, s.key_id) == (sig.name, sig.key_id) for s in signatures):
            raise ValueError(f"malformed note: two signatures by {sig.name}+{sig.key_id:08x}")
        signatures.append(sig)
    return Note(text, tuple(signatures))


def verify_note(note: Note, verifiers: Iterable[NoteVerifier]) -> OpenedNote:
    """Check each signature with the verifier of its (name, key ID); others are unverified.

    ``ValueError`` only if two unequal verifiers claim the (name, key ID) of a signature.
    """
    index: dict[tuple[str, int], list[NoteVerifier]] = {}
    for v in verifiers:
        index.setdefault((v.name, v.key_id), []).append(v)
    message = note.text.encode("utf-8")
    verified: list[Signature] = []
    unverified: list[Signature] = []
    invalid: list[Signature] = []
    for sig in note.signatures:
        candidates = index.get((sig.name, sig.key_id), [])
        if not candidates:
            unverified.append(sig)
        elif any(other != candidates[0] for other in candidates):
            raise ValueError(f"ambiguous verifiers for key {sig.name}+{sig.key_id:08x}")
        else:
            ok = candidates[0].verify(message, sig.signature)
            (verified if ok else invalid).append(sig)
    return OpenedNote(note.text, tuple(verified), tuple(unverified), tuple(invalid))


def open_note(note: str | bytes, verifiers: Iterable[NoteVerifier]) -> OpenedNote:
    """``parse_note`` then ``verify_note``."""
    return verify_note(parse_note(note), verifiers)


def sign_note(text: str, signers: Iterable[NoteSigner]) -> str:
    """A note of ``text`` (see ``check_note_text``) signed by each signer, in order."""
    check_note_text(text)
    return _assemble(text, (), signers)


def add_signatures(note: str | bytes, signers: Iterable[NoteSigner]) -> str:
    """``note`` with the signers' signatures appended; checks none of the existing ones.

    An existing signature with a signer's (name, key ID) is replaced, as Go's ``note.Sign``.
    """
    parsed = parse_note(note)
    return _assemble(parsed.text, parsed.signatures, signers)


@dataclass(frozen=True)
class KeyString:
    """A decoded ``name+hexkeyid+base64(type||key)`` string."""

    name: str
    key_id: int
    sig_type: int
    key: bytes


def parse_verifier_key(vkey: str) -> KeyString:
    """Decode a verifier key string; ``ValueError`` unless its key ID matches its key."""
    parsed = _split_key(vkey)
    if compute_key_id(parsed.name, parsed.sig_type, parsed.key) != parsed.key_id:
        raise ValueError(f"key {parsed.name!r}: key ID {parsed.key_id:08x} does not match the key")
    return parsed


def parse_signer_key(skey: str) -> KeyString:
    """Decode ``PRIVATE+KEY+name+hexid+base64(type||secret)``; the key ID is not checked here."""
    if not isinstance(skey, str) or not skey.startswith(PRIVATE_KEY_PREFIX):
        raise ValueError("a signer key must be a str starting with PRIVATE+KEY+")
    return _split_key(skey[len(PRIVATE_KEY_PREFIX) :])


def read_key(text: str, sig_type: int, *, private: bool = False) -> KeyString:
    """A verifier key string (or, ``private``, a signer key string) of the signature type
    ``sig_type``; ``ValueError`` for another type. A signer key's ID is not checked here."""
    parsed = parse_signer_key(text) if private else parse_verifier_key(text)
    if parsed.sig_type != sig_type:
        raise ValueError(f"key {parsed.name!r} is type {parsed.sig_type}, not {sig_type}")
    return parsed


def format_key(name: str, key_id: int, sig_type: int, material: bytes, *, private: bool = False) -> str:
    """``name+hexid+base64(type||material)``, after ``PRIVATE+KEY+`` for a signer key."""
    encoded = base64.b64encode(bytes([sig_type]) + material).decode("ascii")
    return f"{PRIVATE_KEY_PREFIX if private else ''}{name}+{key_id:08x}+{encoded}"


class _HasKeyId(Protocol):
    @property
    def key_id(self) -> int: ...


SignerT = TypeVar("SignerT", bound=_HasKeyId)


def load_signer(make: Callable[[str, bytes], SignerT], skey: str, sig_type: int) -> SignerT:
    """``make(name, secret)`` from a signer key string of ``sig_type``; ``ValueError`` when the
    string is malformed, of another type, or states another key ID than its key has."""
    parsed = read_key(skey, sig_type, private=True)
    signer = make(parsed.name, parsed.key)
    if signer.key_id != parsed.key_id:
        raise ValueError(f"signer key {parsed.name!r}: key ID does not match the key")
    return signer


def ed25519_verify(key: Ed25519PublicKey, message: bytes, signature: bytes) -> bool:
    """RFC 8032 verification that reports failure instead of raising."""
    if len(signature) != 64:
        return False
    try:
        key.verify(signature, message)
    except InvalidSignature:
        return False
    return True


@dataclass(frozen=True)
class Ed25519VerifierKey:
    """A named Ed25519 public key for the signature type ``SIG_TYPE``, with its key ID and
    verifier key string. Subclasses add ``verify``; equal when class, name and key are."""

    SIG_TYPE: ClassVar[int] = SIG_ED25519
    name: str
    public_key: bytes
    key_id: int = field(init=False)
    _key: Ed25519PublicKey = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.public_key) != 32:
            raise ValueError(f"key {self.name!r}: Ed25519 public key is not 32 bytes")
        key = Ed25519PublicKey.from_public_bytes(self.public_key)
        object.__setattr__(self, "_key", key)
        object.__setattr__(self, "key_id", compute_key_id(self.name, self.SIG_TYPE, self.public_key))

    @classmethod
    def from_key(cls, vkey: str) -> Self:
        """From a verifier key string ``name+hexid+base64(SIG_TYPE||public key)``."""
        parsed = read_key(vkey, cls.SIG_TYPE)
        return cls(parsed.name, parsed.key)

    def to_key(self) -> str:
        """The verifier key string."""
        return format_key(self.name, self.key_id, self.SIG_TYPE, self.public_key)


@dataclass(frozen=True)
class Ed25519SignerKey:
    """A named Ed25519 private key (32-byte RFC 8032 seed) for the signature type ``SIG_TYPE``,
    with its key ID and signer key string. Subclasses add ``sign``; repr hides the seed."""

    SIG_TYPE: ClassVar[int] = SIG_ED25519
    name: str
    seed: bytes = field(repr=False)
    key_id: int = field(init=False)
    public_key: bytes = field(init=False, repr=False)
    _key: Ed25519PrivateKey = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_name(self.name)
        if len(self.seed) != 32:
            raise ValueError(f"key {self.name!r}: Ed25519 seed is not 32 bytes")
        key = Ed25519PrivateKey.from_private_bytes(self.seed)
        public = key.public_key().public_bytes_raw()
        object.__setattr__(self, "_key", key)
        object.__setattr__(self, "public_key", public)
        object.__setattr__(self, "key_id", compute_key_id(self.name, self.SIG_TYPE, public))

    @classmethod
    def from_key(cls, skey: str) -> Self:
        """From ``PRIVATE+KEY+name+hexid+base64(SIG_TYPE||seed)``, checking the key ID."""
        return load_signer(cls, skey, cls.SIG_TYPE)

    @classmethod
    def generate(cls, name: str) -> Self:
        """A fresh random key."""
        return cls(name, Ed25519PrivateKey.generate().private_bytes_raw())

    def to_key(self) -> str:
        """The signer key string: secret, keep it private."""
        return format_key(self.name, self.key_id, self.SIG_TYPE, self.seed, private=True)


@dataclass(frozen=True)
class Verifier(Ed25519VerifierKey):
    """Ed25519 note verifier (type 0x01): RFC 8032 over the note text."""

    def verify(self, message: bytes, signature: bytes) -> bool:
        return ed25519_verify(self._key, message, signature)


@dataclass(frozen=True)
class Signer(Ed25519SignerKey):
    """Ed25519 note signer (type 0x01)."""

    def sign(self, message: bytes) -> bytes:
        return self._key.sign(message)

    def verifier(self) -> Verifier:
        return Verifier(self.name, self.public_key)


def generate_signer(name: str) -> tuple[str, str]:
    """A new Ed25519 key pair for ``name``: (signer key string, verifier key string)."""
    signer = Signer.generate(name)
    return signer.to_key(), signer.verifier().to_key()


def _assemble(text: str, existing: Iterable[Signature], signers: Iterable[NoteSigner]) -> str:
    message = text.encode("utf-8")
    new = [Signature(s.name, s.key_id, s.sign(message)) for s in signers]
    keys = {(s.name, s.key_id) for s in new}
    if not new or len(keys) != len(new):
        raise ValueError("signing needs at least one signer, and no two with one name and key ID")
    signatures = [s for s in existing if (s.name, s.key_id) not in keys] + new
    if len(signatures) > MAX_SIGNATURES:
        raise ValueError(f"a note carries at most {MAX_SIGNATURES} signatures")
    return text + "\n" + "".join(s.line() for s in signatures)


def _parse_signature_line(line: str) -> Signature:
    name, sep, encoded = line.removeprefix(_DASH).partition(" ")
    if not line.startswith(_DASH) or not sep or not is_valid_key_name(name):
        raise ValueError(f"malformed signature line {line[:80]!r}")
    raw = b64decode_canonical(encoded)
    if len(raw) < 5:
        raise ValueError(f"signature by {name!r} is shorter than a key ID and one byte")
    return Signature(name, int.from_bytes(raw[:4], "big"), raw[4:])


def _split_key(text: str) -> KeyString:
    if not isinstance(text, str):
        raise ValueError("a key string must be a str")
    name, sep1, rest = text.partition("+")
    hex_id, sep2, encoded = rest.partition("+")
    _check_name(name)
    if not (sep1 and sep2 and _HEX_KEY_ID.fullmatch(hex_id)):
        raise ValueError(f"key {name!r} is not name+<8 lowercase hex digits>+base64")
    material = b64decode_canonical(encoded)
    if len(material) < 2:
        raise ValueError(f"key {name!r} has no key material")
    return KeyString(name, int(hex_id, 16), material[0], material[1:])


def _check_name(name: str) -> None:
    if not is_valid_key_name(name):
        raise ValueError(f"invalid key name {str(name)[:80]!r}: empty, or a space, + or control")


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
