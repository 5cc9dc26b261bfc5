"""The anchor's internal HTTP wire format, shared by its routes and the client of the ingest and
verify pods. The anchor owns the log (origin, checkpoints, proofs), so it writes the receipts;
the others pass its bytes through.

``POST /internal/v1/entries`` (ingest → anchor)
    request: ``{"tenant": "<name>", "digests": ["blake3:<64 hex>", …]}``, at most 10,000
    digests, each as canonical text (SPEC §1), exactly as the client sent them and ingest
    checked them. The anchor is a trust boundary: it checks them again, in bulk with C loops
    (`services.model.Digests.parse`, one JSON parse for the whole list, no object per digest
    until the entries are made), and the tenant name once; bad input is a 400 problem.
    answer: 200, the finished public answer ``{"receipts": [<receipt>, …]}`` (SPEC §5's
    canonical receipts, in the request's order, subject = the tenant, written by
    `merkle.write_receipts`). Ingest streams it to its client without parsing it, and
    `PUT /v1/documents` splices its one receipt (`one_receipt`) into its own answer.
``GET /internal/v1/entries?tenant=<name>&digest=<digest>`` (verify → anchor)
    answer: ``{"entries": [{"index": <int>, "salt": "<32 hex>"}, …]}``, earliest first.
``DELETE /internal/v1/entries?tenant=<name>&digest=<digest>`` (verify → anchor, erasure)
    answer: ``{"erased": <int>}``, how many of the tenant's notarizations of the digest the
    anchor's index forgot (0: there was none).
Errors are problem+json; 503 carries Retry-After.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from merkle.digests import Digest
from merkle.receipt import NodeTexts, write_receipts
from services.model import BadDigest, Digests, Sequenced
from storage.errors import BadRequest

MAX_DIGESTS = 10_000
RECEIPTS_HEAD = b'{"receipts":['
RECEIPTS_TAIL = b"]}"
_NODE_TEXTS = NodeTexts()
"""The JSON text of proof nodes, shared by every answer: the requests of one batch share its
nodes, and a random placement leaves each request alone few in common (merkle.receipt.NodeTexts).
Emptied past `_NODE_TEXTS_MAX` nodes (~200 bytes each; a 20,000-entry batch has ~40,000)."""
_NODE_TEXTS_MAX = 1 << 16


def encode_request(tenant: str, digests: Digests) -> bytes:
    return orjson.dumps({"tenant": tenant, "digests": list(digests.texts)})


def decode_request(body: Any) -> tuple[str, Digests]:
    """The tenant and the digests of a request's parsed JSON; BadRequest naming what is wrong.
    The tenant's name is the sequencer's to check (`Sequencer.submit`)."""
    if (
        not isinstance(body, dict)
        or not isinstance(body.get("tenant"), str)
        or not isinstance(body.get("digests"), list)
    ):
        raise BadRequest('expected {"tenant": str, "digests": ["blake3:…", …]}', kind="invalid-request")
    raw = body["digests"]
    if len(raw) > MAX_DIGESTS:
        raise BadRequest(
            f"at most {MAX_DIGESTS} digests per call, got {len(raw)}", kind="too-many-digests", status=413
        )
    try:
        return body["tenant"], Digests.parse(raw)
    except BadDigest as e:
        raise BadRequest(str(e), kind="invalid-digest", position=e.position) from e


def encode_answer(
    *, origin: str, tenant: str, digests: Sequence[Digest], results: Sequence[Sequenced]
) -> bytes:
    """The answer to a submission: `{"receipts": [...]}`, one canonical receipt per digest (given
    as the Digest objects the entries were made of: writing them is cheaper than checking text)."""
    if len(_NODE_TEXTS) > _NODE_TEXTS_MAX:
        _NODE_TEXTS.clear()
    return write_receipts(
        subject=tenant,
        origin=origin,
        digests=digests,
        proven=results,
        head=RECEIPTS_HEAD,
        tail=RECEIPTS_TAIL,
        node_texts=_NODE_TEXTS,
    )


def one_receipt(answer: bytes) -> bytes:
    """The receipt of an answer to a one-digest submission, as bytes (no parsing: its framing is
    this module's, and a quote outside a JSON string is never escaped, inside always is);
    ValueError when the answer is not one receipt."""
    if not (answer.startswith(RECEIPTS_HEAD + b"{") and answer.endswith(b"}" + RECEIPTS_TAIL)) or (
        b'},{"format":' in answer
    ):
        raise ValueError(f"not the anchor's answer for one digest: {answer[:80]!r}")
    return answer[len(RECEIPTS_HEAD) : -len(RECEIPTS_TAIL)]


def encode_forgotten(count: int) -> dict[str, Any]:
    """The answer of `DELETE /internal/v1/entries`: how many rows were erased (0: none)."""
    return {"erased": count}


def decode_forgotten(body: Any) -> int:
    count = body.get("erased") if isinstance(body, dict) else None
    if not isinstance(count, int) or isinstance(count, bool) or count < 0:
        raise ValueError(f"malformed erasure answer from the anchor: {str(body)[:200]}")
    return count
