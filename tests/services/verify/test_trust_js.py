"""The page's key histories and witness policies (static/trust.js, through receipt.js under Node)
against merkle's (merkle.trust, merkle.policy): on receipts signed in and outside their keys'
periods, and witness quorums met, not met or asked for by nobody, the same checks with the same
status and the same words; malformed policies and statement chains refused with the same message."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest

from merkle import Receipt, Trust, verify_receipt
from merkle.keyhistory import Rotation
from merkle.note import Signer, add_signatures
from services.published.trust import document_trust
from tests.merkle.logs import ORIGIN, SIGNED_AT
from tests.merkle.test_trust import CLOCKS, LOGS, STATEMENTS, WITNESS, policy, receipt
from tests.services.verify.test_receipt_js import page_verdicts

WITNESSES = f"witness w1 {WITNESS.verifier().to_key()}\ngroup all-of-it all clock w1\n"


def witnessed(r: Receipt, *, tamper: bool = False) -> Receipt:
    note = add_signatures(r.checkpoint, [WITNESS.at(SIGNED_AT + 7)])
    if tamper:  # the witness's line, its last byte changed: a trusted cosignature that fails
        head, line = note.rstrip("\n").rsplit("\n", 1)
        note = head + "\n" + line[:-2] + ("A" if line[-2] != "A" else "B") + "=\n"
    return Receipt.from_obj({**orjson.loads(r.to_json()), "checkpoint": note})


CASES: dict[str, tuple[Receipt, str]] = {
    "first key in period": (receipt(5, LOGS[0], CLOCKS[0]), policy()),
    "handover by old key": (receipt(10, LOGS[0], CLOCKS[0]), policy()),
    "handover by new key": (receipt(10, LOGS[1], CLOCKS[1]), policy()),
    "current key": (receipt(40, LOGS[2], CLOCKS[2]), policy()),
    "old key past its period": (receipt(11, LOGS[0], CLOCKS[0]), policy()),
    "new key before its period": (receipt(9, LOGS[1], CLOCKS[1]), policy()),
    "old clock, new log key": (receipt(20, LOGS[1], CLOCKS[0]), policy()),
    "quorum not met": (receipt(40, LOGS[2], CLOCKS[2]), policy("all-of-it", WITNESSES)),
    "quorum met": (witnessed(receipt(40, LOGS[2], CLOCKS[2])), policy("all-of-it", WITNESSES)),
    "witness forged": (
        witnessed(receipt(40, LOGS[2], CLOCKS[2]), tamper=True),
        policy("all-of-it", WITNESSES),
    ),
    "quorum none": (receipt(40, LOGS[2], CLOCKS[2]), policy("none")),
}


def document(text: str, statements: list[str]) -> str:
    return json.dumps({"logs": [], "witnesses": [], "rotations": statements, "policy": text})


def test_the_page_applies_key_periods_and_witness_policies_as_merkle_does(tmp_path: Path) -> None:
    items: list[dict[str, Any]] = []
    want: dict[str, Any] = {}
    for n, (name, (r, text)) in enumerate(CASES.items()):
        path = tmp_path / f"{n}.json"
        path.write_bytes(r.to_json())
        for form, pol in (("document", document(text, STATEMENTS)), ("policy", text)):
            key = f"{name} ({form})"
            trust = document_trust(json.loads(pol)) if form == "document" else Trust.from_policy(text)
            items.append({"id": key, "receipt": str(path), "document": None, "keys": [], "policy": pol})
            want[key] = verify_receipt(r, keys=trust)
    got = page_verdicts(items, tmp_path)
    for key, result in want.items():
        checks = [[c.name, c.status.value] for c in result.checks]
        assert got[key]["checks"] == checks, key
        assert got[key]["valid"] == result.valid, key
        failed = next((c.detail for c in result.checks if c.status.value == "failed"), None)
        assert got[key]["detail"] == failed, key
    # the cases say what they are about (with the statements: periods; a policy alone: none)
    assert not want["old key past its period (document)"].valid
    assert want["old key past its period (policy)"].valid
    assert [c.name for c in want["quorum met (document)"].failed] == []
    assert want["witness forged (document)"].check("witnesses").status.value == "failed"


@pytest.mark.parametrize(
    "text",
    [
        "log AAAA\nquorum none\n",
        "quorum none\nquorum none\n",
        "witness w1 notar.example/w+00000000+BBBB\nquorum w1\n",
        "group g any w1\nquorum g\n",
        f"witness none {WITNESS.verifier().to_key()}\nquorum none\n",
        f"witness w1 {WITNESS.verifier().to_key()}\nwitness w2 {WITNESS.verifier().to_key()}\nquorum w1\n",
        f"witness w1 {WITNESS.verifier().to_key()}\ngroup g 2 w1\nquorum g\n",
        "log\tx\x01\nquorum none\n",
        f"log {LOGS[0].verifier().to_key()}\n",
        "frobnicate x\nquorum none\n",
    ],
)
def test_a_malformed_policy_is_refused_with_the_same_words(text: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError) as python:
        Trust.from_policy(text)
    path = tmp_path / "r.json"
    path.write_bytes(receipt(5, LOGS[0], CLOCKS[0]).to_json())
    got = page_verdicts(
        [{"id": "x", "receipt": str(path), "document": None, "keys": [], "policy": text}], tmp_path
    )
    assert got["x"]["error"].split(":")[0] == str(python.value).split(":")[0]  # "policy line N"


def test_a_broken_statement_chain_is_refused_by_both(tmp_path: Path) -> None:
    stranger = Signer(ORIGIN, b"\x42" * 32)
    bad = Rotation(ORIGIN, 5, stranger.verifier(), LOGS[1].verifier(), CLOCKS[1].verifier()).sign(stranger)
    chains = {
        "not from the policy": [bad, *STATEMENTS[1:]],
        "out of order": [STATEMENTS[1], STATEMENTS[0]],
    }
    path = tmp_path / "r.json"
    path.write_bytes(receipt(5, LOGS[0], CLOCKS[0]).to_json())
    items: list[dict[str, Any]] = [
        {"id": k, "receipt": str(path), "document": None, "keys": [], "policy": document(policy(), c)}
        for k, c in chains.items()
    ]
    got = page_verdicts(items, tmp_path)
    for k, chain in chains.items():
        with pytest.raises(ValueError) as python:
            document_trust({"policy": policy(), "rotations": chain})
        assert got[k]["error"] == str(python.value), k
