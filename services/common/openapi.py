"""The OpenAPI 3.1 description of the public v1 API (SPEC §6), served at /openapi.json."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aiohttp import web

from merkle.compact import MEDIA_TYPE as COMPACT
from services.common.openapi_batch import BATCH_CONTENT
from services.common.openapi_scrapi import SCRAPI_PATHS

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


def _problems(*codes: int, why: dict[int, str] | None = None) -> dict[str, Any]:
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


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _query(name: str, description: str) -> dict[str, Any]:
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


def _digest_param() -> dict[str, Any]:
    return {"name": "digest", "in": "path", "required": True, "schema": DIGEST}


def _object(properties: dict[str, Any], required: Sequence[str] = ()) -> dict[str, Any]:
    """A JSON object schema with these properties, of which `required` must be present."""
    schema: dict[str, Any] = {"type": "object"}
    if required:
        schema["required"] = list(required)
    schema["properties"] = properties
    return schema


def _text(description: str, media: str) -> dict[str, Any]:
    return {"description": description, "content": {media: {"schema": {"type": "string"}}}}


SCHEMAS: dict[str, Any] = {
    "Problem": _object(
        {
            "type": {"type": "string"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
            "position": {"type": "integer"},
        },
        ["type", "title", "status", "detail"],
    ),
    "Receipt": _object(
        {
            "format": {"const": "notar.receipt.v2"},
            "digest": DIGEST,
            "salt": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
            "subject": {"type": "string", "minLength": 1, "description": "the notarizing tenant"},
            "entry": {"type": "string", "pattern": "^02[0-9a-f]{64}$"},
            "log": _object(
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
    "Keys": _object(
        {
            "logs": {
                "type": "array",
                "items": _object(
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
    "Proof": _object({"proof": {"type": "array", "items": HEX32}}, ["proof"]),
    "Anchored": _object(
        {
            "origin": {"type": "string"},
            "size": {"type": "integer", "description": "the anchored checkpoint's tree size"},
            "checkpoint": {"type": "string", "description": "the anchored checkpoint's signed note"},
            "anchors": {"type": "array", "items": {"type": "object"}, "description": "its anchor records"},
        },
        ["origin", "size", "checkpoint", "anchors"],
    ),
    "Verification": _object(
        {
            "valid": {"type": "boolean", "description": "no check failed (see unchecked)"},
            "checks": {
                "type": "array",
                "items": _object(
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

IF_NONE_MATCH = {
    "name": "If-None-Match",
    "in": "header",
    "required": False,
    "description": "ETags of copies the client holds: 304 when one is the answer's",
    "schema": {"type": "string"},
}
NOT_MODIFIED = {"description": "Not Modified: If-None-Match named this answer's ETag (no body)"}

PATHS: dict[str, Any] = {
    "/v1/digests": {
        "post": {
            "summary": "Notarize up to 10,000 digests; answers once they are in a signed checkpoint. "
            'Every notarization is salted: a body naming "salt" (the unsalted mode of format v1) is a 400',
            "security": SECURED,
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": _object(
                            {
                                "digests": {
                                    "type": "array",
                                    "items": DIGEST,
                                    "minItems": 1,
                                    "maxItems": 10000,
                                },
                            },
                            ["digests"],
                        )
                    }
                },
            },
            "responses": {
                "200": {
                    "description": "the receipts; asked with Accept: " + COMPACT + ", the compact answer",
                    "content": {
                        **_json(
                            _object({"receipts": {"type": "array", "items": _ref("Receipt")}}, ["receipts"])
                        )["content"],
                        **BATCH_CONTENT,
                    },
                },
                **_problems(
                    400,
                    401,
                    408,
                    409,
                    413,
                    503,
                    why={
                        400: 'the request is malformed, or names "salt" (removed in format v2)',
                        413: "more than 10,000 digests, or a body over 2 MiB",
                    },
                ),
            },
        }
    },
    "/v1/documents": {
        "put": {
            "summary": "Store and notarize a document streamed as the raw body",
            "security": SECURED,
            "requestBody": {
                "required": True,
                "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
            },
            "responses": {
                "201": _json(
                    _object(
                        {
                            "document": _object(
                                {
                                    "digest": DIGEST,
                                    "sha256": HEX32,
                                    "size": {"type": "integer"},
                                    "chunks": {"type": "integer"},
                                }
                            ),
                            "receipt": _ref("Receipt"),
                        },
                        ["document", "receipt"],
                    ),
                    "Created",
                ),
                **_problems(
                    401,
                    408,
                    409,
                    413,
                    503,
                    why={413: "the document is larger than DOCUMENT_MAX_MB (when set)"},
                ),
            },
        }
    },
    "/v1/documents/{digest}": {
        "get": {
            "summary": "The document's bytes, each chunk checked against its hash",
            "security": SECURED,
            "parameters": [_digest_param()],
            "responses": {
                "200": _text("the document", "application/octet-stream"),
                **_problems(400, 401, 404, 500),
            },
        },
        "delete": {
            "summary": "Erasure: delete the stored document of the caller's tenant (its receipts stay valid)",
            "security": SECURED,
            "parameters": [_digest_param()],
            "responses": {
                "204": {"description": "deleted: its chunks and both its manifests"},
                **_problems(400, 401, 503),
                **_problems(404, why={404: "this tenant has no such document (any more)"}),
            },
        },
    },
    "/v1/receipts/{digest}": {
        "get": {
            "summary": "The receipt of the tenant's first notarization of the digest, upgraded once anchored",
            "security": SECURED,
            "parameters": [
                _digest_param(),
                {
                    "name": "all",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "string", "enum": ["true", "false"]},
                },
                {
                    "name": "limit",
                    "in": "query",
                    "required": False,
                    "description": "with all=true: receipts in a page (default 100)",
                    "schema": {"type": "integer", "minimum": 1, "maximum": 1000},
                },
                {
                    "name": "cursor",
                    "in": "query",
                    "required": False,
                    "description": "with all=true: the `next` of the page before (`<shard>:<index>` past "
                    "shard 0)",
                    "schema": {
                        "type": "string",
                        "pattern": "^([1-9][0-9]{0,8}:)?(0|[1-9][0-9]{0,18})$",
                    },
                },
            ],
            "responses": {
                "200": _json(
                    {
                        "oneOf": [
                            _ref("Receipt"),
                            _object(
                                {
                                    "receipts": {"type": "array", "items": _ref("Receipt")},
                                    "next": {
                                        "type": ["string", "null"],
                                        "description": "the next page's cursor",
                                    },
                                },
                                ["receipts", "next"],
                            ),
                        ]
                    }
                ),
                **_problems(400, 401, 404, 503),
            },
        },
        "delete": {
            "summary": "Erasure: the service forgets every notarization of the digest by the caller's tenant",
            "description": "The salts leave the service's index; the log keeps its unlinkable "
            "commitments, and every receipt already issued keeps verifying offline.",
            "security": SECURED,
            "parameters": [_digest_param()],
            "responses": {
                "204": {"description": "forgotten"},
                **_problems(400, 401, 503),
                **_problems(404, why={404: "this tenant has no notarization of the digest (any more)"}),
            },
        },
    },
    "/v1/proofs/inclusion": {
        "get": {
            "summary": "RFC 9162 inclusion proof of entry `index` in the tree of `size`",
            "parameters": [_query("index", "entry index"), _query("size", "tree size"), ORIGIN_PARAM],
            "responses": {"200": _json(_ref("Proof")), **_problems(400, 404, why=NOT_YET)},
        }
    },
    "/v1/proofs/consistency": {
        "get": {
            "summary": "RFC 9162 consistency proof between tree sizes `from` and `to`",
            "parameters": [_query("from", "old tree size"), _query("to", "new tree size"), ORIGIN_PARAM],
            "responses": {"200": _json(_ref("Proof")), **_problems(400, 404, why=NOT_YET)},
        }
    },
    "/v1/anchors": {
        "get": {
            "summary": "The anchored or witnessed checkpoint that covers a checkpoint, with its anchors",
            "description": "Public: the anchored or witnessed checkpoint of log `origin` of size `size` or "
            "more with the most anchor kinds and witness cosignatures (the earliest of those), so that "
            "anyone holding a receipt of that log and size upgrades it, with an inclusion proof and a "
            "consistency proof, without an API key (after an erasure too).",
            "parameters": [
                {"name": "origin", "in": "query", "required": True, "schema": {"type": "string"}},
                _query("size", "the tree size of the receipt's checkpoint"),
            ],
            "responses": {
                "200": _json(_ref("Anchored")),
                **_problems(400, 404, why={404: "no anchored checkpoint covers it yet, or no such log"}),
            },
        }
    },
    "/v1/keys": {
        "get": {
            "summary": "Every verifier key of the deployment, per log, and its trust policy",
            "responses": {
                "200": _json(_ref("Keys")),
                **_problems(404),
            },
        }
    },
    "/v1/tsa-ca": {
        "get": {
            "summary": "The TSA CA certificates (PEM) RFC 3161 anchors are checked against here",
            "description": "TSA_CA_FILE's certificates, which POST /v1/verify and, when the user "
            "chooses them, the web verifier trust for RFC 3161 anchors; trusting them trusts this server.",
            "responses": {
                "200": _text("PEM certificates", "application/pem-certificate-chain"),
                **_problems(404, why={404: "TSA_CA_FILE is not set"}),
            },
        }
    },
    "/v1/verify": {
        "post": {
            "summary": "Verify a receipt (and optionally a digest) with one result per check",
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": _object({"receipt": {}, "digest": {"type": "string"}}, ["receipt"])
                    }
                },
            },
            "responses": {
                "200": _json(_ref("Verification")),
                **_problems(400, 408, 413, why={413: "a body over 1 MiB"}),
            },
        }
    },
    "/log/checkpoint": {
        "get": {
            "summary": "The latest signed checkpoint (C2SP tlog-checkpoint)",
            "parameters": [IF_NONE_MATCH],
            "responses": {"200": _text("signed note", "text/plain"), "304": NOT_MODIFIED, **_problems(404)},
        }
    },
    "/log/tile/{path}": {
        "get": {
            "summary": "A C2SP tlog-tiles tile or entry bundle",
            "parameters": [
                {"name": "path", "in": "path", "required": True, "schema": {"type": "string"}},
                IF_NONE_MATCH,
            ],
            "responses": {
                "200": _text("tile bytes", "application/octet-stream"),
                "304": NOT_MODIFIED,
                **_problems(
                    404,
                    why={
                        404: "no such tile, after waiting up to 2 s for it when it belongs "
                        "to a tree larger than the published one"
                    },
                ),
            },
        }
    },
    "/verify": {
        "get": {
            "summary": "The web verifier: a page that checks a receipt, and a file, inside the browser",
            "responses": {"200": _text("a self-contained HTML page", "text/html")},
        }
    },
    "/healthz": {
        "get": {
            "summary": "Liveness: 503 once the process stopped for good and must be restarted",
            "responses": {
                "200": _text("ok", "text/plain"),
                "503": {
                    "description": "stopped for good (the anchor's sequencer): restart the process",
                    "content": {"application/problem+json": {"schema": PROBLEM}},
                },
            },
        }
    },
    "/readyz": {
        "get": {
            "summary": "Readiness",
            "responses": {"200": _text("ready", "text/plain"), "503": _text("not ready", "text/plain")},
        }
    },
    "/metrics": {
        "get": {"summary": "Prometheus metrics", "responses": {"200": _text("metrics", "text/plain")}}
    },
}
for _route in ("checkpoint", "tile/{path}"):  # shard i > 0's log: the same routes under /log/<i>/
    _get = PATHS[f"/log/{_route}"]["get"]
    PATHS[f"/log/{{shard}}/{_route}"] = {
        "get": {
            **_get,
            "summary": _get["summary"] + " of shard i > 0",
            "parameters": [SHARD_PARAM, *_get.get("parameters", [])],
        }
    }

DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "notar",
        "version": "1",
        "description": "Notarization (proof-of-existence) API, SPEC §6. Any request whose head "
        "does not arrive within READ_TIMEOUT_S seconds is answered 408 problem+json and its "
        "connection closed.",
    },
    "paths": {**PATHS, **SCRAPI_PATHS},
    "components": {"schemas": SCHEMAS, "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer"}}},
}


async def openapi_json(request: web.Request) -> web.Response:
    return web.json_response(DOCUMENT)
