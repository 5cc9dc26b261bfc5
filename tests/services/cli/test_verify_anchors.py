"""`notar verify` on anchors it cannot check: never shown as evidence (SECURITY.md, courts).

Regression: an anchor record of a kind with no verifier at hand (evm without --online, rfc3161
without --tsa-ca, any made-up type) passed as "✓ … (independent evidence that the tree existed
then)", though anyone can write such a record into a receipt. And --online matched evm results
to records by their order, so one record failing the offline commitment check shifted the
results of the others.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from merkle.anchors.local import make_block
from merkle.checkpoint import Checkpoint, sign_checkpoint
from merkle.cosignature import CosignatureSigner
from merkle.digests import make_entry, parse_digest
from merkle.hashing import leaf_hash
from merkle.note import Signer
from merkle.receipt import build_receipt
from services.cli import main

ORIGIN = "cli.notar.test/log"
LOG = Signer.generate(ORIGIN)
CLOCK = CosignatureSigner.generate(ORIGIN + "/clock")
KEYS = ["--key", LOG.verifier().to_key(), "--key", CLOCK.verifier().to_key()]
DIGEST = parse_digest("blake3:" + hashlib.sha256(b"contract").hexdigest())
CP = Checkpoint(ORIGIN, 1, leaf_hash(make_entry(DIGEST, bytes(16))))


def receipt_with(anchors: list[dict[str, Any]], tmp: Path) -> Path:
    """A genuine receipt (entry 0 of a tree of 1), a genuine local anchor first, then `anchors`."""
    note = sign_checkpoint(CP, LOG, CLOCK, 1_700_000_000)
    local = {"type": "local", **make_block(previous=None, time=1_700_000_005, checkpoint=CP, signer=LOG)}
    receipt = build_receipt(
        digest=DIGEST, salt=bytes(16), origin=ORIGIN, index=0, tree_size=1, inclusion=[],
        checkpoint=note, anchors=[local, *anchors],
    )  # fmt: skip
    path = tmp / "r.receipt.json"
    path.write_text(json.dumps(receipt))
    return path


def evm_record(tx: str, size: int | None = None) -> dict[str, Any]:
    return {
        "type": "evm", "chain_id": 1, "contract": "0x" + "11" * 20, "tx_hash": tx,
        "block_number": 7, "block_hash": "0x" + "22" * 32,
        "tree_size": CP.size if size is None else size, "root": "0x" + CP.root.hex(),
    }  # fmt: skip


def test_anchors_that_were_not_checked_are_marked_and_not_evidence(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    forged = [
        evm_record("0x" + "33" * 32),
        {"type": "rfc3161", "tsa": "https://tsa.example", "token": "AAAA"},
        {"type": "made-up"},
    ]
    path = receipt_with(forged, tmp_path)
    assert main(["verify", str(path), *KEYS]) == 0, "the log's own checks hold"
    out = capsys.readouterr().out
    assert "✓ anchor 1 (local)" in out
    for name in ("anchor 2 (evm)", "anchor 3 (rfc3161)", "anchor 4 (made-up)"):
        assert f"? {name}" in out and f"✓ {name}" not in out
    assert out.count("NOT checked against its source") == 3
    assert "3 anchor(s) marked ? were not checked" in out

    assert main(["verify", str(path), *KEYS, "--json"]) == 0
    checks = {c["name"]: c for c in json.loads(capsys.readouterr().out)["checks"]}
    assert checks["anchor 1 (local)"]["checked"] and checks["log signature"]["checked"]
    assert not checks["anchor 2 (evm)"]["checked"] and not checks["anchor 4 (made-up)"]["checked"]


def test_online_results_follow_their_records(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from services.anchor.chains import evm

    good, bad = "0x" + "44" * 32, "0x" + "55" * 32
    path = receipt_with([evm_record(bad, size=2), evm_record(good)], tmp_path)

    async def fake_verify_online(record: dict[str, Any], cp: Checkpoint, **_: Any) -> tuple[bool, str]:
        return (True, "on chain (fake)") if record["tx_hash"] == good else (False, "not on chain (fake)")

    monkeypatch.setattr(evm, "verify_online", fake_verify_online)
    code = main(["verify", str(path), *KEYS, "--online", "--evm-rpc", "http://127.0.0.1:9"])
    out = capsys.readouterr().out
    assert code == 1, "anchor 2 names another tree size"
    assert "✗ anchor 2 (evm)" in out and "does not commit to this checkpoint" in out
    assert "✓ anchor 3 (evm)" in out and "on chain (fake)" in out, out
