"""The OpenAPI 3.1 description of the public v1 API (SPEC §6), served at /openapi.json."""

from __future__ import annotations

from typing import Any

from aiohttp import web

DIGEST = {"type": "string", "pattern": "^(blake3|sha256):[0-9a-f]{64}$", "example": "blake3:" + "ab" * 32}
HEX32 = {"type": "string", "pattern": "^[0-9a-f]{64}$"}
PROBLEM = {"$ref": "#/components/schemas/Problem"}
SECURED: list[dict[str, list[str]]] = [{"apiKey": []}]


def _problems(*codes: int) -> dict[str, Any]:
    return {
        str(c): {"description": "problem", "content": {"application/problem+json": {"schema": PROBLEM}}}
        for c in codes
    }


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


def _digest_param() -> dict[str, Any]:
    return {"name": "digest", "in": "path", "required": True, "schema": DIGEST}


def _text(description: str, media: str) -> dict[str, Any]:
    return {"description": description, "content": {media: {"schema": {"type": "string"}}}}


SCHEMAS: dict[str, Any] = {
    "Problem": {
        "type": "object",
        "required": ["type", "title", "status", "detail"],
        "properties": {
            "type": {"type": "string"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
            "position": {"type": "integer"},
        },
    },
    "Receipt": {
        "type": "object",
        "required": ["format", "digest", "entry", "log", "checkpoint", "anchors"],
        "properties": {
            "format": {"const": "notar.receipt.v1"},
            "digest": DIGEST,
            "entry": {"type": "string", "pattern": "^([0-9a-f]{2})*$"},
            "log": {
                "type": "object",
                "required": ["origin", "index", "tree_size", "inclusion"],
                "properties": {
                    "origin": {"type": "string"},
                    "index": {"type": "integer"},
                    "tree_size": {"type": "integer"},
                    "inclusion": {"type": "array", "items": HEX32},
                },
            },
            "checkpoint": {"type": "string"},
            "anchors": {"type": "array", "items": {"type": "object"}},
        },
    },
    "Proof": {
        "type": "object",
        "required": ["proof"],
        "properties": {"proof": {"type": "array", "items": HEX32}},
    },
    "Verification": {
        "type": "object",
        "required": ["valid", "checks"],
        "properties": {
            "valid": {"type": "boolean"},
            "checks": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["name", "ok", "detail"],
                    "properties": {
                        "name": {"type": "string"},
                        "ok": {"type": "boolean"},
                        "detail": {"type": "string"},
                    },
                },
            },
        },
    },
}

PATHS: dict[str, Any] = {
    "/v1/digests": {
        "post": {
            "summary": "Notarize up to 10,000 digests; answers once they are in a signed checkpoint",
            "security": SECURED,
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["digests"],
                            "properties": {
                                "digests": {
                                    "type": "array",
                                    "items": DIGEST,
                                    "minItems": 1,
                                    "maxItems": 10000,
                                },
                                "salt": {"type": "boolean", "default": True},
                            },
                        }
                    }
                },
            },
            "responses": {
                "200": _json(
                    {
                        "type": "object",
                        "required": ["receipts"],
                        "properties": {"receipts": {"type": "array", "items": _ref("Receipt")}},
                    }
                ),
                **_problems(400, 401, 413, 503),
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
                    {
                        "type": "object",
                        "required": ["document", "receipt"],
                        "properties": {
                            "document": {
                                "type": "object",
                                "properties": {
                                    "digest": DIGEST,
                                    "sha256": HEX32,
                                    "size": {"type": "integer"},
                                    "chunks": {"type": "integer"},
                                },
                            },
                            "receipt": _ref("Receipt"),
                        },
                    },
                    "Created",
                ),
                **_problems(401, 503),
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
        }
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
            ],
            "responses": {
                "200": _json(
                    {
                        "oneOf": [
                            _ref("Receipt"),
                            {
                                "type": "object",
                                "properties": {"receipts": {"type": "array", "items": _ref("Receipt")}},
                            },
                        ]
                    }
                ),
                **_problems(400, 401, 404, 503),
            },
        }
    },
    "/v1/proofs/inclusion": {
        "get": {
            "summary": "RFC 9162 inclusion proof of entry `index` in the tree of `size`",
            "parameters": [_query("index", "entry index"), _query("size", "tree size")],
            "responses": {"200": _json(_ref("Proof")), **_problems(400, 404)},
        }
    },
    "/v1/proofs/consistency": {
        "get": {
            "summary": "RFC 9162 consistency proof between tree sizes `from` and `to`",
            "parameters": [_query("from", "old tree size"), _query("to", "new tree size")],
            "responses": {"200": _json(_ref("Proof")), **_problems(400, 404)},
        }
    },
    "/v1/keys": {
        "get": {
            "summary": "Signed-note verifier keys of the log, its clock and trusted witnesses",
            "responses": {
                "200": _json(
                    {
                        "type": "object",
                        "required": ["log", "clock", "witnesses"],
                        "properties": {
                            "log": {"type": "string"},
                            "clock": {"type": "string"},
                            "witnesses": {"type": "array", "items": {"type": "string"}},
                        },
                    }
                ),
                **_problems(404),
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
                        "schema": {
                            "type": "object",
                            "required": ["receipt"],
                            "properties": {"receipt": {}, "digest": {"type": "string"}},
                        }
                    }
                },
            },
            "responses": {"200": _json(_ref("Verification")), **_problems(400, 413)},
        }
    },
    "/log/checkpoint": {
        "get": {
            "summary": "The latest signed checkpoint (C2SP tlog-checkpoint)",
            "responses": {"200": _text("signed note", "text/plain"), **_problems(404)},
        }
    },
    "/log/tile/{path}": {
        "get": {
            "summary": "A C2SP tlog-tiles tile or entry bundle",
            "parameters": [{"name": "path", "in": "path", "required": True, "schema": {"type": "string"}}],
            "responses": {"200": _text("tile bytes", "application/octet-stream"), **_problems(404)},
        }
    },
    "/verify": {
        "get": {
            "summary": "The web verifier: a page that checks a receipt, and a file, inside the browser",
            "responses": {"200": _text("a self-contained HTML page", "text/html")},
        }
    },
    "/healthz": {"get": {"summary": "Liveness", "responses": {"200": _text("ok", "text/plain")}}},
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

DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "notar",
        "version": "1",
        "description": "Notarization (proof-of-existence) API, SPEC §6.",
    },
    "paths": PATHS,
    "components": {"schemas": SCHEMAS, "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer"}}},
}


async def openapi_json(request: web.Request) -> web.Response:
    return web.json_response(DOCUMENT)
