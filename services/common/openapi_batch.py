"""The compact batch answer of `POST /v1/digests` (merkle.compact) in the OpenAPI document: what a
client gets when it sends `Accept: application/vnd.notar.batch+json`."""

from __future__ import annotations

from typing import Any

from merkle.compact import FORMAT, MEDIA_TYPE, PART_MEMBERS

_PART: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": list(PART_MEMBERS),
    "description": "the next len(indices) digests of the request, notarized in one checkpoint",
    "properties": {
        "subject": {"type": "string", "minLength": 1, "description": "the notarizing tenant"},
        "checkpoint": {
            "type": "string",
            "description": "the whole signed note; its body gives the origin, tree size and root",
        },
        "indices": {
            "type": "array",
            "minItems": 1,
            "items": {"type": "integer", "minimum": 0},
            "description": "each entry's log index, in the request's order",
        },
        "salts": {
            "type": "string",
            "pattern": "^([0-9a-f]{32})+$",
            "description": "each entry's 16-byte salt, in the request's order, as one hex string",
        },
        "nodes": {
            "type": "string",
            "pattern": "^([0-9a-f]{64})*$",
            "description": "the fewest tree nodes from which the root and every inclusion proof "
            "follow, given the entries' leaves: level by level from the leaves up, by position",
        },
    },
}

BATCH_CONTENT: dict[str, Any] = {
    MEDIA_TYPE: {
        "schema": {
            "type": "object",
            "additionalProperties": False,
            "required": ["format", "parts"],
            "description": "a compact answer: each receipt of the default answer, byte for byte, "
            "follows from it and the request's digests (merkle.compact.expand, the SDK)",
            "properties": {
                "format": {"const": FORMAT},
                "parts": {"type": "array", "minItems": 1, "items": _PART},
            },
        }
    }
}
