"""storage.errors: every NotarError kind answers with the status, kind and title it carries, and
the one mapper (services.common.problems.to_response) only reads them (DESIGN rule 4)."""

from __future__ import annotations

import importlib
import inspect
import logging
import pkgutil
from typing import Any

import orjson
import pytest

import services
import storage
from services.common.problems import TYPE_BASE, to_response
from storage.errors import (
    BadRequest,
    ConfigError,
    ConflictError,
    CorruptedError,
    NotarError,
    NotFoundError,
    PushbackError,
    RepeatsCapped,
    StorageError,
    Unauthorized,
    VerificationError,
)

SKIP = ("services.cli.__main__",)


def _import_everything() -> None:
    """Every module of storage and services, so that every NotarError subclass is defined."""
    for package in (storage, services):
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            if info.name not in SKIP:
                importlib.import_module(info.name)


def _subclasses(cls: type[NotarError]) -> list[type[NotarError]]:
    found = [cls]
    for sub in cls.__subclasses__():
        found += _subclasses(sub)
    return found


def _instance(cls: type[NotarError]) -> NotarError:
    """An instance of `cls` made from its constructor's signature: a message and whatever
    keyword-only arguments it requires."""
    kwargs: dict[str, Any] = {}
    for name, p in inspect.signature(cls.__init__).parameters.items():
        if p.kind is inspect.Parameter.KEYWORD_ONLY and p.default is inspect.Parameter.empty:
            kwargs[name] = 3.0 if name == "retry_after" else "x"
    return cls("what went wrong", **kwargs)


def _answer(error: BaseException) -> tuple[int, dict[str, Any], dict[str, str]]:
    response = to_response(error)
    assert response.body is not None and isinstance(response.body, bytes)
    return response.status, orjson.loads(response.body), dict(response.headers)


_import_everything()
EVERY_KIND = _subclasses(NotarError)


def test_the_tree_holds_the_services_kinds_too() -> None:
    names = {c.__name__ for c in EVERY_KIND}
    assert {"AnchorError", "SequencerStopped", "LeaseHeldError", "RecoveryError"} <= names


@pytest.mark.parametrize("cls", EVERY_KIND, ids=lambda c: f"{c.__module__}.{c.__qualname__}")
def test_every_kind_answers_what_its_class_says(cls: type[NotarError]) -> None:
    error = _instance(cls)
    status, body, headers = _answer(error)
    assert status == cls.status
    assert body == {
        "type": TYPE_BASE + error.kind,
        "title": error.title,
        "status": error.status,
        "detail": "what went wrong",
        **error.extra,  # the members a kind adds (RepeatsCapped: digest, cap)
    }
    assert headers["Content-Type"].startswith("application/problem+json")
    if error.retry_after is None:
        assert "Retry-After" not in headers
    else:
        assert int(headers["Retry-After"]) == max(1, round(error.retry_after))


REPEATS_TITLE = "Too many notarizations of one digest"
# The answers notar gave before the kinds carried them (tests/services and tests/hostile rely on them).
ANSWERS: list[tuple[NotarError, int, str, str, dict[str, str]]] = [
    (NotFoundError("m"), 404, "not-found", "Not found", {}),
    (ConflictError("m"), 409, "conflict", "Conflict", {}),
    (StorageError("m"), 503, "unavailable", "Service unavailable", {"Retry-After": "5"}),
    (ConfigError("m", setting="S"), 503, "unavailable", "Service unavailable", {"Retry-After": "5"}),
    (PushbackError("m", retry_after=0.2), 503, "pushback", "Busy, retry later", {"Retry-After": "1"}),
    (PushbackError("m", retry_after=7.4), 503, "pushback", "Busy, retry later", {"Retry-After": "7"}),
    (VerificationError("m"), 422, "verification-failed", "Verification failed", {}),
    (CorruptedError("m"), 500, "corrupted", "Stored data is corrupted", {}),
    (Unauthorized("m"), 401, "unauthorized", "Unauthorized", {"WWW-Authenticate": 'Bearer realm="notar"'}),
    (RepeatsCapped("m", digest="d", cap=1), 409, "too-many-repeats", REPEATS_TITLE, {}),
    (BadRequest("m"), 400, "bad-request", "Bad request", {}),
    (BadRequest("m", kind="too-large", status=413), 413, "too-large", "Content Too Large", {}),
    (BadRequest("m", kind="request-timeout", status=408), 408, "request-timeout", "Request Timeout", {}),
    (NotarError("m"), 503, "unavailable", "Service unavailable", {"Retry-After": "5"}),
]


@pytest.mark.parametrize(("error", "status", "kind", "title", "headers"), ANSWERS, ids=lambda v: str(v))
def test_the_answers_are_unchanged(
    error: NotarError, status: int, kind: str, title: str, headers: dict[str, str]
) -> None:
    got_status, body, got_headers = _answer(error)
    assert (got_status, body["type"], body["title"], body["detail"]) == (status, TYPE_BASE + kind, title, "m")
    for name in ("Retry-After", "WWW-Authenticate"):
        assert got_headers.get(name) == headers.get(name)


def test_extra_members_join_the_problem() -> None:
    _, body, _ = _answer(BadRequest("m", kind="invalid-digest", index=3))
    assert body["index"] == 3 and body["type"] == TYPE_BASE + "invalid-digest"


def test_corruption_is_logged_and_anything_else_is_a_logged_500(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="notar.http"):
        _answer(CorruptedError("tile 0/x does not match its hash"))
        status, body, _ = _answer(RuntimeError("boom"))
    assert "tile 0/x does not match its hash" in caplog.text and "unexpected error" in caplog.text
    assert (status, body["type"]) == (500, TYPE_BASE + "internal")
    assert "boom" not in body["detail"]
