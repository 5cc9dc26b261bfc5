"""The building blocks of the OpenAPI document (services.common.openapi): the shared schemas,
parameters and answers its paths are made of."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

DIGEST = {"type": "string", "pattern": "^(blake3|sha256):[0-9a-f]{64}$", "example": "blake3:" + "ab" * 32}
HEX32 = {"type": "string", "pattern": "^[0-9a-f]{64}$"}
VKEY = {"type": "string", "description": "a signed-note verifier key: name+hexkeyid+base64key"}
PROBLEM = {"$ref": "#/components/schemas/Problem"}
SECURED: list[dict[str, list[str]]] = [{"apiKey": []}]


RETRY_AFTER = {
    "Retry-After": {
        "description": "seconds to wait before sending the request again",
        "required": True,
        "schema": {"type": "integer", "minimum": 1},
    }
}
WHY = {
    400: "the request is malformed",
    401: "no API key, one that is not valid, or more than one Authorization header",
    404: "not found",
    408: "the request's body stalled for READ_TIMEOUT_S seconds (the connection is then closed)",
    413: "the body, or what it holds, is over its limit",
    409: "too-many-repeats: the tenant notarized a digest of the request REPEATS_MAX times already; the "
    "problem names the digest and the cap, and nothing of the request was notarized",
    500: "stored data is corrupted: reported, never served",
    503: "busy (the sequencer's queue is full: shed before the body is read) or unavailable for now "
    "(object store, anchor): retry after Retry-After seconds",
}


NOT_YET = {404: "no tree of that size is published, after waiting up to 2 s for it to be"}


def problems(*codes: int, why: dict[int, str] | None = None) -> dict[str, Any]:
    """problem+json answers with these status codes; every 503 carries Retry-After."""
    answers: dict[str, Any] = {}
    for c in codes:
        answers[str(c)] = {
            "description": (why or {}).get(c, WHY[c]),
            "content": {"application/problem+json": {"schema": PROBLEM}},
        }
        if c == 503:
            answers[str(c)]["headers"] = RETRY_AFTER
    return answers


def json_answer(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def schema_ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def query_param(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": True,
        "description": description,
        "schema": {"type": "integer", "minimum": 0},
    }


ORIGIN_PARAM = {
    "name": "origin",
    "in": "query",
    "required": False,
    "description": "the log (shard, SPEC §10) of the proof; default: the deployment's ORIGIN (shard 0)",
    "schema": {"type": "string"},
}
SHARD_PARAM = {
    "name": "shard",
    "in": "path",
    "required": True,
    "description": "shard i > 0 (shard 0 is /log/ itself)",
    "schema": {"type": "string", "pattern": "^[1-9][0-9]{0,8}$"},
}


def digest_param() -> dict[str, Any]:
    return {"name": "digest", "in": "path", "required": True, "schema": DIGEST}


def object_schema(properties: dict[str, Any], required: Sequence[str] = ()) -> dict[str, Any]:
    """A JSON object schema with these properties, of which `required` must be present."""
    schema: dict[str, Any] = {"type": "object"}
    if required:
        schema["required"] = list(required)
    schema["properties"] = properties
    return schema


def text_answer(description: str, media: str) -> dict[str, Any]:
    return {"description": description, "content": {media: {"schema": {"type": "string"}}}}


SCHEMAS: dict[str, Any] = {
    "Problem": object_schema(
        {
            "type": {"type": "string"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
            "position": {"type": "integer"},
        },
        ["type", "title", "status", "detail"],
    ),
    "Receipt": object_schema(
        {
            "format": {"const": "notar.receipt.v2"},
            "digest": DIGEST,
            "salt": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
            "subject": {"type": "string", "minLength": 1, "description": "the notarizing tenant"},
            "entry": {"type": "string", "pattern": "^02[0-9a-f]{64}$"},
            "log": object_schema(
                {
                    "origin": {"type": "string"},
                    "index": {"type": "integer"},
                    "tree_size": {"type": "integer"},
                    "inclusion": {"type": "array", "items": HEX32},
                },
                ["origin", "index", "tree_size", "inclusion"],
            ),
            "checkpoint": {"type": "string"},
            "anchors": {"type": "array", "maxItems": 16, "items": {"type": "object"}},
        },
        ["format", "digest", "salt", "subject", "entry", "log", "checkpoint", "anchors"],
    ),
    "Keys": object_schema(
        {
            "logs": {
                "type": "array",
                "items": object_schema(
                    {
                        "origin": {"type": "string"},
                        "log": VKEY,
                        "clock": VKEY,
                        "state": {"enum": ["active", "frozen", "retired"]},
                        "from_size": {"type": "integer", "minimum": 0},
                        "until_size": {"type": ["integer", "null"], "minimum": 0},
                    },
                    ["origin", "log", "clock", "state", "from_size", "until_size"],
                ),
            },
            "witnesses": {"type": "array", "items": VKEY},
            "policy": {"type": "string", "description": "a C2SP tlog-policy text: the keys and the quorum"},
        },
        ["logs", "witnesses", "policy"],
    ),
    "Proof": object_schema({"proof": {"type": "array", "items": HEX32}}, ["proof"]),
    "Anchored": object_schema(
        {
            "origin": {"type": "string"},
            "size": {"type": "integer", "description": "the anchored checkpoint's tree size"},
            "checkpoint": {"type": "string", "description": "the anchored checkpoint's signed note"},
            "anchors": {"type": "array", "items": {"type": "object"}, "description": "its anchor records"},
        },
        ["origin", "size", "checkpoint", "anchors"],
    ),
    "Verification": object_schema(
        {
            "valid": {"type": "boolean", "description": "no check failed (see unchecked)"},
            "checks": {
                "type": "array",
                "items": object_schema(
                    {
                        "name": {"type": "string"},
                        "status": {"enum": ["ok", "failed", "not checked"]},
                        "ok": {"type": "boolean", "description": "true only for status ok"},
                        "detail": {"type": "string"},
                    },
                    ["name", "status", "ok", "detail"],
                ),
            },
            "unchecked": {"type": "array", "items": {"type": "string"}, "description": "checks not made"},
        },
        ["valid", "checks", "unchecked"],
    ),
}
