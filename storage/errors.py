"""The errors notar raises on purpose, shared by every package (services → storage → merkle).

Each carries a message for humans that names what is involved: the key, bucket, endpoint or
setting. Drivers translate library exceptions into these at their boundary with ``raise … from e``;
one middleware in the services maps them to problem+json.
"""

from __future__ import annotations


class NotarError(Exception):
    """Base of every error notar raises on purpose; ``str(error)`` is the message for humans."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFoundError(NotarError):
    """The key, document, receipt or record asked for does not exist."""

    def __init__(self, message: str, *, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


class ConflictError(NotarError):
    """A write would change something that must not change: different bytes under an immutable
    key, or a conditional write whose precondition no longer holds (another writer won)."""

    def __init__(self, message: str, *, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


class StorageError(NotarError):
    """The store could not do what was asked: unreachable, credentials refused, bucket missing,
    body corrupted in transit, or any other failure. ``transient`` says a later retry may work."""

    def __init__(
        self,
        message: str,
        *,
        key: str | None = None,
        location: str | None = None,
        transient: bool = False,
    ) -> None:
        super().__init__(message)
        self.key = key
        self.location = location
        self.transient = transient


class PushbackError(NotarError):
    """Too much work queued: the caller should come back after ``retry_after`` seconds."""

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class VerificationError(NotarError):
    """A proof, signature, checksum or receipt does not hold."""


class ConfigError(NotarError):
    """A setting is missing or wrong; ``setting`` is its SPEC name (e.g. ``S3_BUCKET``)."""

    def __init__(self, message: str, *, setting: str) -> None:
        super().__init__(message)
        self.setting = setting
