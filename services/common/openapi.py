"""The OpenAPI 3.1 description of the public v1 API (SPEC §6), served at /openapi.json."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from merkle.compact import MEDIA_TYPE as COMPACT
from services.common.openapi_batch import BATCH_CONTENT
from services.common.openapi_schemas import (
    DIGEST,
    HEX32,
    NOT_YET,
    ORIGIN_PARAM,
    PROBLEM,
    SCHEMAS,
    SECURED,
    SHARD_PARAM,
    digest_param,
    json_answer,
    object_schema,
    problems,
    query_param,
    schema_ref,
    text_answer,
)
from services.common.openapi_scrapi import SCRAPI_PATHS

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
                        "schema": object_schema(
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
                        **json_answer(
                            object_schema(
                                {"receipts": {"type": "array", "items": schema_ref("Receipt")}}, ["receipts"]
                            )
                        )["content"],
                        **BATCH_CONTENT,
                    },
                },
                **problems(
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
                "201": json_answer(
                    object_schema(
                        {
                            "document": object_schema(
                                {
                                    "digest": DIGEST,
                                    "sha256": HEX32,
                                    "size": {"type": "integer"},
                                    "chunks": {"type": "integer"},
                                }
                            ),
                            "receipt": schema_ref("Receipt"),
                        },
                        ["document", "receipt"],
                    ),
                    "Created",
                ),
                **problems(
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
            "parameters": [digest_param()],
            "responses": {
                "200": text_answer("the document", "application/octet-stream"),
                **problems(400, 401, 404, 500),
            },
        },
        "delete": {
            "summary": "Erasure: delete the stored document of the caller's tenant (its receipts stay valid)",
            "security": SECURED,
            "parameters": [digest_param()],
            "responses": {
                "204": {"description": "deleted: its chunks and both its manifests"},
                **problems(400, 401, 503),
                **problems(404, why={404: "this tenant has no such document (any more)"}),
            },
        },
    },
    "/v1/receipts/{digest}": {
        "get": {
            "summary": "The receipt of the tenant's first notarization of the digest, upgraded once anchored",
            "security": SECURED,
            "parameters": [
                digest_param(),
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
                "200": json_answer(
                    {
                        "oneOf": [
                            schema_ref("Receipt"),
                            object_schema(
                                {
                                    "receipts": {"type": "array", "items": schema_ref("Receipt")},
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
                **problems(400, 401, 404, 503),
            },
        },
        "delete": {
            "summary": "Erasure: the service forgets every notarization of the digest by the caller's tenant",
            "description": "The salts leave the service's index; the log keeps its unlinkable "
            "commitments, and every receipt already issued keeps verifying offline.",
            "security": SECURED,
            "parameters": [digest_param()],
            "responses": {
                "204": {"description": "forgotten"},
                **problems(400, 401, 503),
                **problems(404, why={404: "this tenant has no notarization of the digest (any more)"}),
            },
        },
    },
    "/v1/proofs/inclusion": {
        "get": {
            "summary": "RFC 9162 inclusion proof of entry `index` in the tree of `size`",
            "parameters": [
                query_param("index", "entry index"),
                query_param("size", "tree size"),
                ORIGIN_PARAM,
            ],
            "responses": {"200": json_answer(schema_ref("Proof")), **problems(400, 404, why=NOT_YET)},
        }
    },
    "/v1/proofs/consistency": {
        "get": {
            "summary": "RFC 9162 consistency proof between tree sizes `from` and `to`",
            "parameters": [
                query_param("from", "old tree size"),
                query_param("to", "new tree size"),
                ORIGIN_PARAM,
            ],
            "responses": {"200": json_answer(schema_ref("Proof")), **problems(400, 404, why=NOT_YET)},
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
                query_param("size", "the tree size of the receipt's checkpoint"),
            ],
            "responses": {
                "200": json_answer(schema_ref("Anchored")),
                **problems(400, 404, why={404: "no anchored checkpoint covers it yet, or no such log"}),
            },
        }
    },
    "/v1/keys": {
        "get": {
            "summary": "Every verifier key of the deployment, per log, and its trust policy",
            "responses": {
                "200": json_answer(schema_ref("Keys")),
                **problems(404),
            },
        }
    },
    "/v1/tsa-ca": {
        "get": {
            "summary": "The TSA CA certificates (PEM) RFC 3161 anchors are checked against here",
            "description": "TSA_CA_FILE's certificates, which POST /v1/verify and, when the user "
            "chooses them, the web verifier trust for RFC 3161 anchors; trusting them trusts this server.",
            "responses": {
                "200": text_answer("PEM certificates", "application/pem-certificate-chain"),
                **problems(404, why={404: "TSA_CA_FILE is not set"}),
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
                        "schema": object_schema({"receipt": {}, "digest": {"type": "string"}}, ["receipt"])
                    }
                },
            },
            "responses": {
                "200": json_answer(schema_ref("Verification")),
                **problems(400, 408, 413, why={413: "a body over 1 MiB"}),
            },
        }
    },
    "/log/checkpoint": {
        "get": {
            "summary": "The latest signed checkpoint (C2SP tlog-checkpoint)",
            "parameters": [IF_NONE_MATCH],
            "responses": {
                "200": text_answer("signed note", "text/plain"),
                "304": NOT_MODIFIED,
                **problems(404),
            },
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
                "200": text_answer("tile bytes", "application/octet-stream"),
                "304": NOT_MODIFIED,
                **problems(
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
            "responses": {"200": text_answer("a self-contained HTML page", "text/html")},
        }
    },
    "/healthz": {
        "get": {
            "summary": "Liveness: 503 once the process stopped for good and must be restarted",
            "responses": {
                "200": text_answer("ok", "text/plain"),
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
            "responses": {
                "200": text_answer("ready", "text/plain"),
                "503": text_answer("not ready", "text/plain"),
            },
        }
    },
    "/metrics": {
        "get": {"summary": "Prometheus metrics", "responses": {"200": text_answer("metrics", "text/plain")}}
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
