"""The log keys as COSE keys (SPEC §12): ``GET /.well-known/scitt-keys`` and ``…/{kid}``.

Built from the deployment's keys document (services.published.trust, what ``GET /v1/keys`` serves):
every log key it lists, current and past, becomes an OKP Ed25519 COSE key whose ``kid`` is its RFC
9679 thumbprint (merkle.cose), the ``kid`` COSE receipts carry. Only log keys sign receipts; clock
and witness keys are not listed. The keys document is the one source: when it grows a key's
history, the key set lists the history.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from merkle.cbor import encode
from merkle.cose import ed25519_key, key_set, log_kid
from merkle.note import Verifier
from services.published.trust import log_keys

_HEX_KID = re.compile("[0-9a-f]{64}")
_B64URL_KID = re.compile("[A-Za-z0-9_-]{43}")


def public_keys(document: Any) -> list[bytes]:
    """The Ed25519 public keys of every log key in a keys document, in its order, each once.
    ValueError when the document is not one, or lists a log key that is not Ed25519."""
    found: list[bytes] = []
    for vkey in log_keys(document):
        key = Verifier.from_key(vkey).public_key
        if key not in found:
            found.append(key)
    return found


def cose_key_set(document: Any) -> bytes:
    """The COSE Key Set (RFC 9052 §7) of the document's log keys, as ``application/cbor``."""
    return key_set(public_keys(document))


def parse_kid(text: str) -> bytes:
    """A kid as its URL path segment gives it: base64url without padding (SCRAPI: kids that are not
    URL-safe), or 64 hex digits. ValueError otherwise."""
    if _HEX_KID.fullmatch(text):
        return bytes.fromhex(text)
    if _B64URL_KID.fullmatch(text):
        try:
            kid = base64.urlsafe_b64decode(text + "=")
        except (binascii.Error, ValueError):
            kid = b""
        if len(kid) == 32 and base64.urlsafe_b64encode(kid).rstrip(b"=").decode() == text:
            return kid
    raise ValueError("a kid is 32 bytes in base64url without padding (43 characters) or in hex")


def cose_key(document: Any, kid: bytes) -> bytes | None:
    """The COSE key of the log key whose thumbprint is ``kid``, or None."""
    for key in public_keys(document):
        if log_kid(key) == kid:
            return encode(ed25519_key(key))
    return None
