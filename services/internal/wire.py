"""The anchor's internal HTTP wire format (`/internal/v1/entries`), shared by its routes and the
client of the ingest and verify pods: POST submits items, GET looks a tenant's digest up, DELETE
erases it (`?tenant=&digest=` for both)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from merkle.digests import parse_digest
from services.common.problems import BadRequest
from services.model import Item, Sequenced, check_tenant

MAX_ITEMS = 10_000


def encode_request(tenant: str, items: Sequence[Item]) -> dict[str, Any]:
    return {"tenant": tenant, "items": [{"digest": str(it.digest), "salt": it.salted} for it in items]}


def decode_request(body: Any) -> list[Item]:
    if (
        not isinstance(body, dict)
        or not isinstance(body.get("tenant"), str)
        or not isinstance(body.get("items"), list)
    ):
        raise BadRequest('expected {"tenant": str, "items": [{"digest": str, "salt": bool}, ...]}')
    tenant, raw = body["tenant"], body["items"]
    try:
        check_tenant(tenant)
    except ValueError as e:
        raise BadRequest(str(e), kind="invalid-tenant") from e
    if len(raw) > MAX_ITEMS:
        raise BadRequest(
            f"at most {MAX_ITEMS} items per call, got {len(raw)}", kind="too-many-digests", status=413
        )
    items = []
    for i, it in enumerate(raw):
        if not isinstance(it, dict) or not isinstance(it.get("salt", True), bool):
            raise BadRequest(
                f"item {i} must be {{'digest': str, 'salt': bool}}", kind="invalid-digest", position=i
            )
        try:
            items.append(Item(tenant, parse_digest(it.get("digest")), it.get("salt", True)))
        except ValueError as e:
            raise BadRequest(f"item {i}: {e}", kind="invalid-digest", position=i) from e
    return items


def encode_results(results: Sequence[Sequenced]) -> dict[str, Any]:
    head = results[0] if results else None
    return {
        "tree_size": head.tree_size if head else 0,
        "checkpoint": head.checkpoint if head else "",
        "results": [
            {"index": r.index, "salt": r.salt.hex(), "inclusion": [h.hex() for h in r.inclusion]}
            for r in results
        ],
    }


def decode_results(items: Sequence[Item], body: Any) -> list[Sequenced]:
    try:
        rows = body["results"]
        if len(rows) != len(items):
            raise ValueError(f"{len(rows)} results for {len(items)} items")
        out = []
        for it, row in zip(items, rows, strict=True):
            salt = bytes.fromhex(row["salt"])
            out.append(
                Sequenced(
                    int(row["index"]),
                    it.digest.multihash + salt,
                    salt,
                    int(body["tree_size"]),
                    [bytes.fromhex(h) for h in row["inclusion"]],
                    str(body["checkpoint"]),
                )
            )
        return out
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"malformed answer from the anchor: {e}") from e


def encode_forgotten(count: int) -> dict[str, Any]:
    """The answer of `DELETE /internal/v1/entries`: how many rows were erased (0: none)."""
    return {"erased": count}


def decode_forgotten(body: Any) -> int:
    count = body.get("erased") if isinstance(body, dict) else None
    if not isinstance(count, int) or isinstance(count, bool) or count < 0:
        raise ValueError(f"malformed erasure answer from the anchor: {str(body)[:200]}")
    return count
