"""The SCITT routes (SCRAPI, SPEC §12) in the OpenAPI document: COSE and CBOR, not JSON.

Their errors are RFC 9290 concise problem details in CBOR; 503 and 429 carry Retry-After.
"""

from __future__ import annotations

from typing import Any

COSE = "application/cose"
CBOR = "application/cbor"
CONCISE = "application/concise-problem-details+cbor"
BINARY = {"type": "string", "format": "binary"}
RETRY = {"description": "seconds to wait", "required": True, "schema": {"type": "integer", "minimum": 1}}
LOCATION = {"description": "the entry's locator: /entries/<entry ID>", "schema": {"type": "string"}}
WHY = {
    400: "a statement refused by the registration policy (its reason), a malformed request or locator",
    401: "no API key, or one that is not valid",
    404: "no such entry or key",
    408: "the request's body stalled for READ_TIMEOUT_S seconds (the connection is then closed)",
    413: "the statement is over SCITT_MAX_KB",
    415: "the body is not application/cose",
    429: "polled again sooner than half of Retry-After",
    503: "busy, or the log's keys are not usable for now",
}


def _binary(media: str, description: str = "OK", headers: dict[str, Any] | None = None) -> dict[str, Any]:
    answer: dict[str, Any] = {"description": description, "content": {media: {"schema": BINARY}}}
    if headers:
        answer["headers"] = headers
    return answer


def _problems(*codes: int) -> dict[str, Any]:
    answers: dict[str, Any] = {}
    for code in codes:
        retry = {"Retry-After": RETRY} if code in (429, 503) else None
        answers[str(code)] = _binary(CONCISE, WHY[code], retry)
    return answers


def _waiting(status: str) -> dict[str, Any]:
    return {
        "description": f"{status}: the statement is being sequenced; poll Location after Retry-After",
        "headers": {"Location": LOCATION, "Retry-After": RETRY},
    }


_ENTRY_ID = {
    "name": "id",
    "in": "path",
    "required": True,
    "description": "the entry ID: the statement's SHA-256 as its log entry holds it (64 hex digits)",
    "schema": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
}

SCRAPI_PATHS: dict[str, Any] = {
    "/entries": {
        "post": {
            "summary": "Register a signed statement (SCRAPI): its COSE receipt, or where to poll for it",
            "security": [{"apiKey": []}],
            "requestBody": {"required": True, "content": {COSE: {"schema": BINARY}}},
            "responses": {
                "201": _binary(COSE, "the COSE receipt (RFC 9942)", {"Location": LOCATION}),
                "303": _waiting("303"),
                **_problems(400, 401, 408, 413, 415, 503),
            },
        }
    },
    "/entries/{id}": {
        "get": {
            "summary": "The COSE receipt of a registered statement (SCRAPI)",
            "parameters": [_ENTRY_ID],
            "responses": {
                "200": _binary(COSE, "the COSE receipt (RFC 9942)", {"Location": LOCATION}),
                "302": _waiting("302"),
                **_problems(400, 404, 429, 503),
            },
        }
    },
    "/.well-known/scitt-keys": {
        "get": {
            "summary": "Every log key, current and past, as a COSE key set (kid: RFC 9679 thumbprint)",
            "responses": {"200": _binary(CBOR, "a COSE_KeySet"), **_problems(503)},
        }
    },
    "/.well-known/scitt-keys/{kid}": {
        "get": {
            "summary": "One log key as a COSE key",
            "parameters": [{"name": "kid", "in": "path", "required": True, "schema": {"type": "string"}}],
            "responses": {"200": _binary(CBOR, "a COSE_Key"), **_problems(404, 503)},
        }
    },
}
