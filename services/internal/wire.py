"""The anchor's internal HTTP wire format, shared by its routes and the client of the ingest and
verify pods. The anchor owns the log (origin, checkpoints, proofs): it writes the receipts, or
sends what they are made of for ingest to write with the same writer (`RUN`); ingest checks and
passes its bytes through otherwise.

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
    With ``Accept: application/vnd.notar.batch+json``: the compact answer of the same receipts
    (`merkle.compact`: one part per checkpoint, written by `encode_compact`), which ingest
    passes through, or joins part by part when a request went to several shards.
    With ``Accept: application/vnd.notar.run`` (`RUN`, internal, what `AnchorClient` asks for):
    the material of those receipts, not the receipts (`encode_run`): a JSON line with the
    origin, tree size, checkpoint, indices and each proof's length, then the salts, entries and
    proof hashes as raw bytes. Ingest writes the receipts (`decode_run`, then `encode_answer`,
    the anchor's own writer: the same bytes), so that the one sequencer's process does not
    spend ~7 µs per digest writing ~2 KB of JSON that the ingest workers can write in
    parallel. An anchor that does not know it answers JSON, which ingest passes through.
    With ``Accept: application/vnd.notar.run.nodes`` (`RUN_NODES`, asked for first by today's
    `AnchorClient`): the same, but the proofs are sent as the nodes of the request's compact
    part (merkle.compact), the JSON line saying how many (``"nodes"``, not ``"lengths"``); ingest
    hashes the proofs out of them and checks they give the checkpoint's root (a wrong node is a
    malformed answer). The sequencer then makes no proof per entry: ~2–3 µs less of its process
    per digest. An anchor from before it matches `RUN` inside the longer type and sends `RUN`;
    an ingest from before it does not ask, and is sent `RUN`.
``GET /internal/v1/entries?tenant=<t>&digest=<d>[&limit=<n>][&after=<index>][&origin=<o>]`` (verify → anchor)
    answer: ``{"entries": [{"index": <int>, "salt": "<32 hex>", "signed_at": <int> | null}, …]}``,
    earliest first: those after index `after` when given, at most `limit` (the anchor reads no more
    rows of its index); `signed_at` is the time the clock signed the entry's batch at
    (`services.model.Found`; an answer without it, from an older anchor, reads as null). With
    `origin`, of the frozen shard of that origin, read from its frozen index in the object store
    (any anchor answers for every frozen shard; 404 when the table has no frozen shard of it);
    without, of the anchor's own shard.
``DELETE /internal/v1/entries?tenant=<t>&digest=<d>[&origin=<o>]`` (verify → anchor, erasure)
    answer: ``{"erased": <int>}``, how many of the tenant's notarizations of the digest the
    anchor's index forgot (0: there was none); with `origin`, tombstoned in that frozen shard's
    index.
``POST /internal/v1/scitt/entries?wait_ms=<ms>`` (SCITT routes → anchor)
    request: the 33-byte log entry of a signed statement (type 0x03), as
    ``application/octet-stream``; the SCITT routes checked the statement and its issuer.
    answer: 200 with the statement's COSE receipt (``application/cose``), or 200 with an empty
    body when it is not sequenced within ``wait_ms`` (``PENDING``: the anchor goes on).
``GET /internal/v1/scitt/entries/<entry, 66 hex>`` (SCITT routes → anchor)
    answer: 200 with the receipt, 200 empty while it is being sequenced, 404 when unknown.
Errors are problem+json; 503 carries Retry-After.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

import orjson

from merkle import compact
from merkle.digests import ENTRY_SIZE, SALT_SIZE, Digest
from merkle.hashing import HASH_SIZE
from merkle.receipt import MAX_INCLUSION
from merkle.receipt_writer import NodeTexts, write_receipts, write_run_receipts
from services.model import BadDigest, Digests, Found, Sequenced, SequencedGroup
from storage.errors import BadRequest

MAX_DIGESTS = 10_000
SCITT_ENTRIES = "/internal/v1/scitt/entries"
PENDING = b""  # the answer about a SCITT entry that is still being sequenced
SCITT_ENTRY_SIZE = 33
RECEIPTS_HEAD = b'{"receipts":['
RECEIPTS_TAIL = b"]}"
RUN = "application/vnd.notar.run"  # internal: a default answer's material (module doc)
RUN_NODES = RUN + ".nodes"  # the same, its proofs as their compact part's nodes (module doc)
_NODE_TEXTS = NodeTexts()
"""The JSON text of proof nodes, shared by every answer: the requests of one batch share its
nodes, and a random placement leaves each request alone few in common (merkle.receipt_writer.NodeTexts).
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
    *, origin: str, tenant: str, digests: Sequence[Digest | str], results: Sequence[Sequenced]
) -> bytes:
    """The answer to a submission: `{"receipts": [...]}`, one canonical receipt per digest (given
    as the Digest objects the entries were made of, cheaper to write than text is to check; or as
    their canonical text, which `AnchorClient` has from the request).
    A sequencer's `SequencedGroup` is written by column, without a `Sequenced` per entry."""
    if len(_NODE_TEXTS) > _NODE_TEXTS_MAX:
        _NODE_TEXTS.clear()
    if isinstance(results, SequencedGroup):
        return write_run_receipts(
            subject=tenant,
            origin=origin,
            digests=digests,
            run=results,
            head=RECEIPTS_HEAD,
            tail=RECEIPTS_TAIL,
            node_texts=_NODE_TEXTS,
        )
    return write_receipts(
        subject=tenant,
        origin=origin,
        digests=digests,
        proven=results,
        head=RECEIPTS_HEAD,
        tail=RECEIPTS_TAIL,
        node_texts=_NODE_TEXTS,
    )


def accepts_run(accept: str | None) -> str | None:
    """What an internal request asks for of `RUN_NODES` and `RUN` (only `AnchorClient` asks):
    the first it lists, or None."""
    if accept is None or RUN not in accept:
        return None
    return RUN_NODES if RUN_NODES in accept.split(",", 1)[0] else RUN


def encode_run(*, origin: str, results: SequencedGroup, nodes: bool = False) -> bytes:
    """`RUN`: what `encode_answer` writes the receipts of `results` from, but the digests (the
    request's own), as a JSON line and raw bytes (module doc); ~0.6 KB per entry against ~2 KB
    of receipt, and nothing per entry written but its proof's length. With `nodes`, `RUN_NODES`:
    the nodes of the group's compact part in place of the proofs."""
    head: dict[str, Any] = {
        "origin": origin,
        "tree_size": results.tree_size,
        "checkpoint": results.checkpoint,
        "indices": results.indices,
    }
    if nodes:
        made = results.nodes()
        head["nodes"], hashes = len(made), b"".join(made)
    else:
        proofs = results.proofs()
        head["lengths"] = [len(p) for p in proofs]
        hashes = b"".join([h for p in proofs for h in p])
    return b"".join((orjson.dumps(head), b"\n", results.salts, b"".join(results.entries), hashes))


def decode_run(answer: bytes) -> tuple[str, SequencedGroup]:
    """The origin and the sequenced group of a `RUN` or `RUN_NODES` answer; ValueError naming what
    does not fit (the sizes must add up to the byte). The proofs of a `RUN_NODES` answer are
    hashed out of its nodes when first read (`SequencedGroup.proofs`), ValueError then when the
    nodes do not give the checkpoint's root."""
    line, newline, raw = answer.partition(b"\n")
    try:
        head = orjson.loads(line) if newline else None
    except orjson.JSONDecodeError:
        head = None
    if not isinstance(head, dict):
        raise ValueError(f"not a run answer: {answer[:80]!r}")
    origin, size, note = head.get("origin"), head.get("tree_size"), head.get("checkpoint")
    indices, lengths, count = head.get("indices"), head.get("lengths"), head.get("nodes")
    if not (
        isinstance(origin, str)
        and isinstance(note, str)
        and type(size) is int
        and isinstance(indices, list)
        and all(type(i) is int and 0 <= i < size for i in indices)
        and (
            (isinstance(lengths, list) and count is None and len(lengths) == len(indices)
             and all(type(n) is int and 0 <= n <= MAX_INCLUSION for n in lengths))
            or (lengths is None and type(count) is int and 0 <= count <= MAX_INCLUSION * len(indices))
        )
    ):
        raise ValueError(
            "a run answer's origin, tree_size, checkpoint, indices, lengths or nodes are malformed"
        )
    n, hashes = len(indices), (sum(lengths) if isinstance(lengths, list) else cast(int, count))
    salts_end = SALT_SIZE * n
    entries_end = salts_end + ENTRY_SIZE * n
    if len(raw) != entries_end + HASH_SIZE * hashes:
        raise ValueError(f"a run answer of {n} entries and {hashes} proof hashes has {len(raw)} bytes")
    entries = [raw[i : i + ENTRY_SIZE] for i in range(salts_end, entries_end, ENTRY_SIZE)]
    flat = [raw[i : i + HASH_SIZE] for i in range(entries_end, len(raw), HASH_SIZE)]
    proofs: list[list[bytes]] | None = None
    if lengths is not None:
        proofs, at = [], 0
        for k in lengths:
            proofs.append(flat[at : at + k])
            at += k
    group = SequencedGroup(
        indices=indices, entries=entries, salts=raw[:salts_end], tree_size=size, checkpoint=note,
        proofs=proofs, nodes=None if proofs is not None else flat,
    )
    return origin, group


def encode_compact(*, tenant: str, results: SequencedGroup) -> bytes:
    """The compact answer to a submission (merkle.compact): a request's entries are sequenced in
    one batch, so one part, its nodes as the sequencer made them (`SequencedGroup.nodes`), its
    indices and salts written whole: nothing per entry."""
    if not results:
        return compact.answer([])
    part = compact.write_part(
        subject=tenant,
        checkpoint=results.checkpoint,
        indices=results.indices,
        salts=(results.salts,),
        nodes=results.nodes(),
    )
    return compact.answer([part])


def one_receipt(answer: bytes) -> bytes:
    """The receipt of an answer to a one-digest submission, as bytes (no parsing: its framing is
    this module's, and a quote outside a JSON string is never escaped, inside always is);
    ValueError when the answer is not one receipt."""
    if not (answer.startswith(RECEIPTS_HEAD + b"{") and answer.endswith(b"}" + RECEIPTS_TAIL)) or (
        b'},{"format":' in answer
    ):
        raise ValueError(f"not the anchor's answer for one digest: {answer[:80]!r}")
    return answer[len(RECEIPTS_HEAD) : -len(RECEIPTS_TAIL)]


def encode_page(limit: int | None, after: int | None) -> dict[str, str]:
    """The query parameters of a look-up's page."""
    query = {} if limit is None else {"limit": str(limit)}
    return query if after is None else {**query, "after": str(after)}


def decode_page(query: Mapping[str, str]) -> tuple[int | None, int | None]:
    """(limit, after) of a look-up's query; BadRequest when one is not a decimal (limit ≥ 1)."""
    out: list[int | None] = []
    for name, least in (("limit", 1), ("after", 0)):
        raw = query.get(name)
        if raw is not None and (not raw.isdigit() or len(raw) > 19 or int(raw) < least):
            raise BadRequest(
                f"query parameter {name!r} must be a decimal integer of at least {least}",
                kind="invalid-parameter",
            )
        out.append(None if raw is None else int(raw))
    return out[0], out[1]


def encode_found(found: Sequence[Found]) -> dict[str, Any]:
    """The answer of `GET /internal/v1/entries`."""
    return {"entries": [{"index": f.index, "salt": f.salt.hex(), "signed_at": f.signed_at} for f in found]}


def decode_found(body: Any) -> list[Found]:
    """The notarizations of a look-up's answer; ValueError when it is malformed."""
    try:
        return [_found(e) for e in body["entries"]]
    except (KeyError, TypeError, AttributeError) as e:
        raise ValueError(f"malformed lookup answer from the anchor: {str(body)[:200]}") from e


def _found(entry: Mapping[str, Any]) -> Found:
    index, salt, signed_at = entry["index"], entry["salt"], entry.get("signed_at")
    if not (_count(index) and isinstance(salt, str) and (signed_at is None or _count(signed_at))):
        raise ValueError(f"malformed lookup entry from the anchor: {str(entry)[:200]}")
    return Found(index, bytes.fromhex(salt), signed_at)


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def encode_forgotten(count: int) -> dict[str, Any]:
    """The answer of `DELETE /internal/v1/entries`: how many rows were erased (0: none)."""
    return {"erased": count}


def decode_forgotten(body: Any) -> int:
    count = body.get("erased") if isinstance(body, dict) else None
    if not isinstance(count, int) or isinstance(count, bool) or count < 0:
        raise ValueError(f"malformed erasure answer from the anchor: {str(body)[:200]}")
    return count


def decode_scitt_entry(entry: bytes) -> bytes:
    """A SCITT entry as the anchor takes it; BadRequest when it is not 33 bytes of type 0x03."""
    if len(entry) != SCITT_ENTRY_SIZE or entry[0] != 0x03:
        raise BadRequest("a SCITT entry is 33 bytes of type 0x03", kind="invalid-entry")
    return entry


def decode_wait_ms(raw: str | None) -> float:
    """The `wait_ms` query parameter in seconds (0 to 60 s); BadRequest otherwise."""
    if raw is None or not raw.isdigit() or len(raw) > 6 or int(raw) > 60_000:
        raise BadRequest(
            "wait_ms must be a whole number of milliseconds up to 60000", kind="invalid-parameter"
        )
    return int(raw) / 1000
