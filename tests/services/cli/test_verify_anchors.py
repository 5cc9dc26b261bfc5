"""`notar verify` on anchors it cannot check: never shown as evidence (SECURITY.md, courts).

Regression: an anchor record of a kind with no verifier at hand (evm without --online, rfc3161
without --tsa-ca, any made-up type) passed as "✓ … (independent evidence that the tree existed
then)", though anyone can write such a record into a receipt; they are "not checked" now, listed
in the verdict. And --online matched evm results to records by their order, so one record failing
the offline commitment check shifted the results of the others.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import blake3
import pytest

from merkle import AnchorTarget, AnchorVerdict, Receipt, Status
from merkle.anchors.local import make_block
from merkle.checkpoint import Checkpoint, sign_checkpoint
from merkle.cosignature import CosignatureSigner
from merkle.digests import make_entry, parse_digest
from merkle.hashing import leaf_hash
from merkle.note import Signer
from services.cli import main

ORIGIN = "cli.notar.test/log"
LOG = Signer.generate(ORIGIN)
CLOCK = CosignatureSigner.generate(ORIGIN + "/clock")
KEYS = ["--key", LOG.verifier().to_key(), "--key", CLOCK.verifier().to_key()]
DOCUMENT = b"the contract"
DIGEST = parse_digest("blake3:" + blake3.blake3(DOCUMENT).hexdigest())
SALT = bytes(range(16))
CP = Checkpoint(ORIGIN, 1, leaf_hash(make_entry(DIGEST, SALT, "acme")))


def receipt_with(anchors: list[dict[str, Any]], tmp: Path) -> Path:
    """A genuine receipt (entry 0 of a tree of 1), a genuine local anchor first, then `anchors`."""
    note = sign_checkpoint(CP, LOG, CLOCK, 1_700_000_000)
    local = {"type": "local", **make_block(previous=None, time=1_700_000_005, checkpoint=CP, signer=LOG)}
    receipt = Receipt.build(
        digest=DIGEST, salt=SALT, subject="acme", origin=ORIGIN, index=0, tree_size=1, inclusion=[],
        checkpoint=note, anchors=[local, *anchors],
    )  # fmt: skip
    path = tmp / "r.receipt.json"
    path.write_bytes(receipt.to_json())
    return path


def evm_record(tx: str, size: int | None = None) -> dict[str, Any]:
    return {
        "type": "evm", "chain_id": 1, "contract": "0x" + "11" * 20, "tx_hash": tx,
        "block_number": 7, "block_hash": "0x" + "22" * 32,
        "tree_size": CP.size if size is None else size, "root": "0x" + CP.root.hex(),
    }  # fmt: skip


def test_anchors_that_were_not_checked_are_listed_and_not_evidence(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    forged = [
        evm_record("0x" + "33" * 32),
        {"type": "rfc3161", "tsa": "https://tsa.example", "token": "AAAA"},
        {"type": "made-up"},
    ]
    path = receipt_with(forged, tmp_path)
    assert main(["verify", str(path), *KEYS]) == 0, "no check failed"
    out = capsys.readouterr().out
    verdict = out.splitlines()[0]
    assert verdict.startswith("✓ VALID as far as checked — not checked: the document (none given), ")
    assert "every check holds" not in out
    for what in (
        "anchor 2 (evm, needs --online)",
        "anchor 3 (rfc3161, needs --tsa-ca)",
        "anchor 4 (made-up, unknown type)",
    ):
        assert what in verdict, verdict
    assert "✓ anchor 1 (local)" in out
    for name in ("anchor 2 (evm)", "anchor 3 (rfc3161)", "anchor 4 (made-up)"):
        assert f"– {name}" in out and f"✓ {name}" not in out
    assert out.count("(not checked: it proves nothing here)") == 3

    assert main(["verify", str(path), *KEYS, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    checks = {c["name"]: c for c in doc["checks"]}
    assert checks["anchor 1 (local)"]["status"] == "ok" and checks["log signature"]["ok"]
    for name in ("anchor 2 (evm)", "anchor 4 (made-up)", "document"):
        assert checks[name]["status"] == "not checked" and checks[name]["ok"] is False
    assert doc["valid"] is True
    assert doc["unchecked"] == ["document", "anchor 2 (evm)", "anchor 3 (rfc3161)", "anchor 4 (made-up)"]


def test_every_check_made_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = receipt_with([], tmp_path)
    doc = tmp_path / "contract.txt"
    doc.write_bytes(DOCUMENT)
    assert main(["verify", str(path), str(doc), *KEYS]) == 0
    out = capsys.readouterr().out
    assert out.startswith("✓ VALID — every check holds.\n  The document, notarized by 'acme', was entry 0")
    assert "–" not in out
    assert main(["verify", str(path), *KEYS]) == 0
    assert capsys.readouterr().out.startswith(
        "✓ VALID as far as checked — not checked: the document (none given)."
    )
    assert main(["verify", str(path), "--key", KEYS[1]]) == 0
    out = capsys.readouterr().out
    assert "not checked: the document (none given), the signed time (no clock key)." in out
    assert "– signed time" in out


def test_a_log_key_named_after_another_origin_is_named_in_the_failure(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = receipt_with([], tmp_path)
    other = Signer.generate("elsewhere.example/log").verifier().to_key()
    assert main(["verify", str(path), "--key", other, "--key", KEYS[3]]) == 1
    out = capsys.readouterr().out
    assert out.startswith("✗ NOT VALID — The receipt is not signed by the key you trust")
    assert "\n  The check 'log signature' failed: " in out
    assert f"The tree head is signed by {ORIGIN} (key ID {LOG.key_id:08x}), which you do not trust" in out
    assert f"no log key you gave (--key) is named after the receipt's origin '{ORIGIN}'" in out
    assert "log keys given: elsewhere.example/log" in out


def test_words_a_judge_reads(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 15 item 9: a failed check says what its failure means, never its claim; the key that
    did sign is named when it is not trusted; "1 entry"; the local anchor is the service's own
    chain, not independent evidence; a saved API answer is recognised, with how to extract it."""
    path = receipt_with([], tmp_path)
    changed = tmp_path / "contract.txt"
    changed.write_bytes(DOCUMENT + b".")
    assert main(["verify", str(path), str(changed), *KEYS]) == 1
    out = capsys.readouterr().out
    assert out.startswith("✗ NOT VALID — The document is not the one that was notarized: it was changed")
    assert "(the document is the one that was notarized)" not in out
    assert "(The document is not the one that was notarized" in out

    same_name = Signer.generate(ORIGIN)  # another key of the log's name: a spoofed server's
    assert main(["verify", str(path), "--key", same_name.verifier().to_key(), "--key", KEYS[3]]) == 1
    out = capsys.readouterr().out
    assert f"The tree head is signed by {ORIGIN} (key ID {LOG.key_id:08x}), which you do not trust" in out
    assert "is named after the receipt's origin" not in out  # it is: the key is not the one

    (tmp_path / "doc.txt").write_bytes(DOCUMENT)
    assert main(["verify", str(path), str(tmp_path / "doc.txt"), *KEYS]) == 0
    out = capsys.readouterr().out
    assert "in a tree of 1 entry signed by" in out and "1 entries" not in out
    local = out.split("✓ anchor 1 (local)")[1].splitlines()[1]
    assert "the service's own chain" in local and "not independent evidence" in local

    receipt = json.loads(path.read_text())
    for saved, extract in (
        ({"document": {"digest": str(DIGEST)}, "receipt": receipt}, "jq '.receipt'"),
        ({"receipts": [receipt]}, "jq '.receipts[0]'"),
        ({"receipts": [receipt, receipt]}, "jq '.receipts[0]'"),
    ):
        answer = tmp_path / "answer.json"
        answer.write_text(json.dumps(saved))
        assert main(["verify", str(answer), *KEYS]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"notar: {answer} is a saved API answer, not a receipt: ")
        assert err.count("\n") == 1
        assert f"{extract} {answer} > receipt.json" in err, err


def test_online_results_follow_their_records(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from services.anchor.chains import evm

    good, bad = "0x" + "44" * 32, "0x" + "55" * 32
    path = receipt_with([evm_record(bad, size=2), evm_record(good)], tmp_path)
    asked: list[tuple[str, int]] = []

    async def fake_verify_online(record: dict[str, Any], target: AnchorTarget, **_: Any) -> AnchorVerdict:
        asked.append((record["tx_hash"], target.size))
        if record["tx_hash"] == good:
            return AnchorVerdict(Status.OK, "on chain (fake)", time=1_700_000_010)
        return AnchorVerdict(Status.FAILED, "not on chain (fake)")

    monkeypatch.setattr(evm, "verify_online", fake_verify_online)
    code = main(["verify", str(path), *KEYS, "--online", "--evm-rpc", "http://127.0.0.1:9"])
    out = capsys.readouterr().out
    assert code == 1, "anchor 2 names another tree size"
    assert "✗ anchor 2 (evm)" in out and "does not commit to this checkpoint" in out
    assert "✓ anchor 3 (evm)" in out and "on chain (fake)" in out, out
    assert asked == [(good, 1)], "only the record that commits to the checkpoint goes to the chain"
