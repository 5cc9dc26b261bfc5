"""POST /v1/verify (SPEC §6) on a running `notar serve` app: merkle's verdict under the server's own
published keys, `{"valid", "checks": [{name, status, ok, detail}], "unchecked"}`; `ok` only for
status ok, `valid` when no check failed; a malformed receipt (a v1 one too) is a failed format
check, a body that is not a verification request a 400."""

from __future__ import annotations

import copy
from typing import Any

import blake3

from merkle import verify_receipt
from merkle.checkpoint import parse_checkpoint
from merkle.note import parse_note
from services.published.trust import document_trust
from tests.services.conftest import Notar


def b3(data: bytes) -> str:
    return "blake3:" + blake3.blake3(data).hexdigest()


async def verify(notar: Notar, body: Any) -> dict[str, Any]:
    r = await notar.client.post("/v1/verify", json=body)
    assert r.status == 200, await r.text()
    answer: dict[str, Any] = await r.json()
    return answer


async def test_the_answer_is_merkles_verdict_with_three_statuses(notar: Notar) -> None:
    digest = b3(b"the will")
    r = await notar.client.post("/v1/digests", json={"digests": [digest]}, headers=notar.acme)
    receipt = (await r.json())["receipts"][0]

    whole = await verify(notar, {"receipt": receipt, "digest": digest})
    published = document_trust(await (await notar.client.get("/v1/keys")).json())
    assert whole == verify_receipt(receipt, keys=published, digest=digest).to_obj()
    # the server's policy adds the witnesses check (the clock's cosignature is its quorum)
    flat = verify_receipt(receipt, keys=notar.keys, digest=digest).to_obj()
    assert [c for c in whole["checks"] if c["name"] != "witnesses"] == flat["checks"]
    assert whole["checks"][-1]["name"] == "witnesses" and whole["checks"][-1]["status"] == "ok"
    assert whole["valid"] is True and whole["unchecked"] == []
    assert all(c["status"] == "ok" and c["ok"] for c in whole["checks"])

    no_digest = await verify(notar, {"receipt": receipt})
    document = next(c for c in no_digest["checks"] if c["name"] == "document")
    assert no_digest["valid"] is True and no_digest["unchecked"] == ["document"]
    assert document["status"] == "not checked" and document["ok"] is False

    unknown = copy.deepcopy(receipt)
    unknown["anchors"] = [{"type": "x-future", "proof": "…"}]
    answer = await verify(notar, {"receipt": unknown, "digest": digest})
    assert answer["valid"] is True and answer["unchecked"] == ["anchor 1 (x-future)"]

    tampered = copy.deepcopy(receipt)
    tampered["subject"] = "globex"
    answer = await verify(notar, {"receipt": tampered, "digest": digest})
    assert answer["valid"] is False and [c["name"] for c in answer["checks"] if c["status"] == "failed"] == [
        "entry"
    ]


async def test_what_cannot_be_checked_is_never_ok(notar: Notar) -> None:
    """Issue 15: a garbage RFC 3161 token, an invented anchor kind and an EVM record without tree
    size each passed as `ok: true`; a receipt with an extra `signed_time` member passed whole."""
    digest = b3(b"the lease")
    r = await notar.client.post("/v1/digests", json={"digests": [digest]}, headers=notar.acme)
    receipt = (await r.json())["receipts"][0]
    evm = {
        "type": "evm", "chain_id": 1, "contract": "0x" + "11" * 20, "tx_hash": "0x" + "ab" * 32,
        "block_number": 7, "block_hash": "0x" + "cd" * 32,
        "root": "0x" + parse_checkpoint(parse_note(receipt["checkpoint"]).text).root.hex(),
    }  # fmt: skip
    anchors = [
        {"type": "rfc3161", "tsa": "https://tsa.example", "token": "MAOhYmM="},  # DER garbage
        {"type": "notary-public", "seal": "DigiCert 2019"},
        evm,
    ]
    answer = await verify(notar, {"receipt": {**receipt, "anchors": anchors}, "digest": digest})
    checks = {c["name"]: c for c in answer["checks"]}
    for name in ("anchor 1 (rfc3161)", "anchor 2 (notary-public)", "anchor 3 (evm)"):
        assert checks[name]["status"] == "not checked" and checks[name]["ok"] is False, checks[name]
    assert answer["unchecked"] == ["anchor 1 (rfc3161)", "anchor 2 (notary-public)", "anchor 3 (evm)"]

    extra = await verify(notar, {"receipt": {**receipt, "signed_time": "2019-01-01T00:00:00Z"}})
    assert extra["valid"] is False and [c["status"] for c in extra["checks"]] == ["failed"]
    assert "unknown member 'signed_time'" in extra["checks"][0]["detail"]


async def test_a_malformed_receipt_is_a_failed_format_check(notar: Notar) -> None:
    digest = b3(b"the deed")
    r = await notar.client.post("/v1/digests", json={"digests": [digest]}, headers=notar.acme)
    receipt = (await r.json())["receipts"][0]
    malformed = {
        "v1": ({**receipt, "format": "notar.receipt.v1"}, "notar.receipt.v1 is a pre-release format"),
        "unknown member": ({**receipt, "comment": "x"}, "unknown member 'comment'"),
        "17 anchors": ({**receipt, "anchors": [{"type": "x"}] * 17}, "at most 16 anchors"),
        "not an object": ([1, 2], "a receipt is a JSON object"),
    }
    for what, (body, why) in malformed.items():
        answer = await verify(notar, {"receipt": body})
        assert answer["valid"] is False and len(answer["checks"]) == 1, what
        check = answer["checks"][0]
        assert (check["name"], check["status"], check["ok"]) == ("format", "failed", False), what
        assert why in check["detail"], (what, check["detail"])
    doubled = b'{"receipt": {"format": "notar.receipt.v2", "format": "notar.receipt.v2"}}'
    r = await notar.client.post("/v1/verify", data=doubled, headers={"Content-Type": "application/json"})
    assert r.status == 400 and r.content_type == "application/problem+json"
