"""The errors notar raises on purpose, shared by every package (services → storage → merkle).

Each carries a message for humans that names what is involved: the key, bucket, endpoint or
setting. Drivers translate library exceptions into these at their boundary with ``raise … from e``.
Each kind carries its HTTP answer as class attributes: ``status``, the problem ``kind`` (the
``type`` is ``urn:notar:problem:<kind>``) and ``title``; ``retry_after`` adds ``Retry-After``.
The one middleware of the services (``services.common.problems``) reads them: a kind answers the
same wherever it is raised, and a new kind says its answer where it is defined.

The tree, with each kind's answer::

    NotarError                 503 unavailable (Retry-After: 5)
    ├── NotFoundError          404 not-found
    ├── ConflictError          409 conflict
    │   └── RepeatsCapped      409 too-many-repeats (digest, cap)
    ├── StorageError           503 unavailable (Retry-After: 5)
    ├── PushbackError          503 pushback (Retry-After: its retry_after)
    ├── VerificationError      422 verification-failed
    ├── ConfigError            503 unavailable (Retry-After: 5)
    ├── CorruptedError         500 corrupted (logged as an error)
    ├── Unauthorized           401 unauthorized (WWW-Authenticate: Bearer)
    └── BadRequest             400 bad-request, or the status and kind it is given (408 titled
                               Request Timeout, 413 Content Too Large…)

Subclasses elsewhere (``AnchorError``, ``SequencerStopped``, ``LeaseHeldError``…) answer as
their parent unless they say otherwise.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any, ClassVar


class NotarError(Exception):
    """Base of every error notar raises on purpose; ``str(error)`` is the message for humans.
    Unless a kind says otherwise it is a 503: the service cannot do it now, retry later."""

    status: int = 503
    kind: str = "unavailable"
    title: str = "Service unavailable"
    retry_after: float | None = 5.0
    log_level: ClassVar[int | None] = None
    """When set, the middleware logs the error at this level before answering."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
        self.extra: dict[str, Any] = {}

    def headers(self) -> dict[str, str]:
        """The HTTP headers of its answer besides the content type."""
        if self.retry_after is None:
            return {}
        return {"Retry-After": str(max(1, round(self.retry_after)))}


class NotFoundError(NotarError):
    """The key, document, receipt or record asked for does not exist."""

    status, kind, title, retry_after = 404, "not-found", "Not found", None

    def __init__(self, message: str, *, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


class ConflictError(NotarError):
    """A write would change something that must not change: different bytes under an immutable
    key, or a conditional write whose precondition no longer holds (another writer won)."""

    status, kind, title, retry_after = 409, "conflict", "Conflict", None

    def __init__(self, message: str, *, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


class RepeatsCapped(ConflictError):
    """A tenant would notarize one digest more than REPEATS_MAX times: the whole request is
    refused (nothing of it is written). Not a retry-later: only erasing the digest's receipts
    (``DELETE /v1/receipts/{digest}``) lets the tenant notarize it again."""

    kind, title = "too-many-repeats", "Too many notarizations of one digest"

    def __init__(self, message: str, *, digest: str, cap: int) -> None:
        super().__init__(message)
        self.extra = {"digest": digest, "cap": cap}


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

    kind, title = "pushback", "Busy, retry later"
    retry_after: float

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class VerificationError(NotarError):
    """A proof, signature, checksum or receipt does not hold."""

    status, kind, title, retry_after = 422, "verification-failed", "Verification failed", None


class ConfigError(NotarError):
    """A setting is missing or wrong; ``setting`` is its SPEC name (e.g. ``S3_BUCKET``)."""

    def __init__(self, message: str, *, setting: str) -> None:
        super().__init__(message)
        self.setting = setting


class CorruptedError(NotarError):
    """Stored bytes no longer match their hash: reported, never served."""

    status, kind, title, retry_after = 500, "corrupted", "Stored data is corrupted", None
    log_level = logging.ERROR


class Unauthorized(NotarError):
    """No API key, or one that belongs to no tenant."""

    status, kind, title, retry_after = 401, "unauthorized", "Unauthorized", None

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": 'Bearer realm="notar"'}


class BadRequest(NotarError):
    """The request itself is wrong (malformed JSON, bad digest…): 400 ``bad-request`` unless
    given its own stable ``kind`` and ``status`` (408 request-timeout, 413 too-large…);
    ``extra`` members join the problem document."""

    status, kind, title, retry_after = 400, "bad-request", "Bad request", None
    TITLES: ClassVar[dict[int, str]] = {408: "Request Timeout", 413: "Content Too Large"}
    """The statuses with a name of their own (RFC 9110), their title; the others: Bad request."""

    def __init__(self, message: str, *, kind: str = "bad-request", status: int = 400, **extra: Any) -> None:
        super().__init__(message)
        self.kind, self.status, self.extra = kind, status, extra
        self.title = self.TITLES.get(status, "Bad request")


def raise_worst(outcomes: Iterable[object]) -> None:
    """Raise the error of a call made of several writes (`ObjectStore.put_all_if_absent`), from
    its writes' outcomes (an exception, or anything else for a success): a ConflictError first
    (it will not go away on a retry), else the first error; nothing when all succeeded."""
    found = [o for o in outcomes if isinstance(o, BaseException)]
    error = next((e for e in found if isinstance(e, ConflictError)), found[0] if found else None)
    if error is not None:
        raise error
