"""What the receipt fuzzers found, each pinned by a test (and its input under tests/fuzz/corpus/,
which every short fuzz run replays)."""

from __future__ import annotations

import base64
import copy
from pathlib import Path
from typing import Any

import pytest

from loadtest.fuzz_seeds import CONFIRMATIONS, ChainState, Seeds, drive
from loadtest.fuzz_targets import Targets, byte_targets, run_bytes
from merkle import AnchorTarget, Status, verify_receipt
from merkle.checkpoint import parse_checkpoint

CORPUS = Path(__file__).parent / "corpus"


def _with_witness(seeds: Seeds) -> dict[str, Any]:
    """The seed receipt whose checkpoint a trusted witness cosigned too, without anchors."""
    return next(r for r in seeds.receipts if "witness" in r["checkpoint"] and not r["anchors"])


def _edit_signature(note: str, name: str, at: int) -> str:
    lines = note.split("\n")
    for i, line in enumerate(lines):
        if line.startswith(f"— {name} "):
            head, encoded = line.rsplit(" ", 1)
            raw = bytearray(base64.b64decode(encoded))
            raw[at] ^= 1
            lines[i] = f"{head} {base64.b64encode(bytes(raw)).decode()}"
    return "\n".join(lines)


@pytest.mark.parametrize("at", [4, 11, 40], ids=["timestamp-high-byte", "timestamp-low-byte", "signature"])
def test_a_broken_clock_cosignature_fails_even_when_a_witness_vouches(seeds: Seeds, at: int) -> None:
    # Found by Hypothesis: the clock's cosignature with its timestamp changed (so it no longer
    # verifies) passed, because the witness's valid cosignature gave the "signed time".
    r = copy.deepcopy(_with_witness(seeds))
    r["checkpoint"] = _edit_signature(r["checkpoint"], "clock.fuzz.notar.test", at)
    result = verify_receipt(r, keys=seeds.keys)
    assert not result.valid
    assert [(c.name, c.detail) for c in result.failed] == [
        ("signed time", "a cosignature by trusted key clock.fuzz.notar.test does not verify")
    ]
    witness = copy.deepcopy(_with_witness(seeds))
    witness["checkpoint"] = _edit_signature(witness["checkpoint"], "witness.fuzz.test", at)
    assert [c.name for c in verify_receipt(witness, keys=seeds.keys).failed] == ["signed time"]
    # Still valid: the untouched receipt, and one whose broken cosignature is by a key not trusted.
    assert verify_receipt(_with_witness(seeds), keys=seeds.keys).valid
    log_only = [k for k in seeds.keys if not k.startswith(("clock.", "witness."))]
    assert verify_receipt(r, keys=log_only).valid


@pytest.mark.parametrize("logs", [[None], [1], "0x", 5, [{"topics": None}], [{"topics": "0xbea4"}]], ids=repr)
def test_a_malformed_chain_answer_is_a_verdict_not_a_crash(seeds: Seeds, logs: object) -> None:
    # Found by Hypothesis: an eth_getTransactionReceipt answer whose logs were [null] raised
    # AttributeError out of `notar verify --online`; a node's answer is not trusted to be well formed.
    from services.anchor.chains.evm import verify_online

    record = next(a for recs in seeds.anchors.values() for a in recs if a["type"] == "evm")
    chain = copy.deepcopy(seeds.chain)
    chain["receipts"][record["tx_hash"]]["logs"] = logs
    body = next(b for b, recs in seeds.anchors.items() if record in recs)
    target = AnchorTarget.of(parse_checkpoint(body), body)
    verdict = drive(verify_online(record, target, rpc=ChainState(chain), confirmations=CONFIRMATIONS))
    assert verdict.status is Status.FAILED and "logs are not a list of log objects" in verdict.detail
    verdict = drive(verify_online(record, target, rpc=ChainState(seeds.chain), confirmations=CONFIRMATIONS))
    assert verdict.status is Status.OK


def test_the_corpus_replays_clean(targets: Targets) -> None:
    """Every saved input (crashes found once, seeds worth keeping) runs through its target."""
    groups = byte_targets(targets)
    files = sorted(p for p in CORPUS.rglob("*") if p.is_file())
    assert files, "tests/fuzz/corpus/ is empty"
    for path in files:
        run_bytes(groups[path.parent.name], path.read_bytes())


def test_a_tlog_proof_with_an_empty_extra_line_is_refused(seeds: Seeds) -> None:
    # Found by Hypothesis: "extra " with no data parsed as no extra data, so two texts gave one
    # proof. A notar tlog-proof's extra data rebuilds the entry (salt, subject, multihash): it is
    # never empty, and a line without it is refused.
    from merkle.export import parse_tlog_proof

    text = seeds.tlog_proofs[0]
    assert text.startswith("c2sp.org/tlog-proof@v1\nextra ")
    head, rest = text.split("\n", 1)
    empty = head + "\nextra \n" + rest.split("\n", 1)[1]
    with pytest.raises(ValueError, match="too short"):
        parse_tlog_proof(empty)
    assert parse_tlog_proof(text).extra


def test_a_cose_receipt_relabelled_to_another_tree_size_is_refused(seeds: Seeds, targets: Targets) -> None:
    # Found by Hypothesis when RFC 9942's format signed the root alone: relabelled from (index 0,
    # size 20) to size 21, the same path gave the same signed root. notar's COSE profile now signs
    # the tree size in the protected header (merkle.cose), so the relabelled receipt is refused.
    import cbor2

    from merkle.export import verify_cose

    data = next(
        base64.b64decode(c)
        for c in seeds.cose
        if verify_cose(base64.b64decode(c), targets.cose_log).tree_size == 20
    )
    protected, unprotected, payload, signature = cbor2.loads(data[1:])
    size, index, path = cbor2.loads(unprotected[396][-1][0])
    assert (size, index) == (20, 0)
    unprotected[396] = {-1: [cbor2.dumps([21, index, path])]}
    relabelled = b"\xd2" + cbor2.dumps([protected, unprotected, payload, signature])
    with pytest.raises(ValueError, match="signed tree size is 20"):
        verify_cose(relabelled, targets.cose_log)
    targets.cose(relabelled)  # refused, so no finding


@pytest.mark.parametrize(
    "kid", ["fuzz.notar.test/log+233a756b", 10**12, [1, 2]], ids=["text", "huge-int", "list"]
)
def test_a_cose_key_id_that_is_not_bytes_is_refused(seeds: Seeds, targets: Targets, kid: object) -> None:
    # Found by atheris: a kid of another CBOR type reached bytes(kid) in the error message: a text
    # raised TypeError, and an integer of 10**12 would have asked for a terabyte of zeros.
    import cbor2

    from merkle.export import verify_cose

    protected, unprotected, payload, signature = cbor2.loads(base64.b64decode(seeds.cose[0])[1:])
    header = cbor2.loads(protected)
    header[4] = kid
    forged = [cbor2.dumps(header), unprotected, payload, signature]
    with pytest.raises(ValueError, match="kid"):
        verify_cose(b"\xd2" + cbor2.dumps(forged), targets.cose_log)


def test_a_token_changed_outside_what_the_tsa_signed_is_the_same_evidence(
    seeds: Seeds, targets: Targets
) -> None:
    # Found by atheris (an oracle refinement, not a verifier bug): a token whose SignedData
    # digestAlgorithms names another OID still verifies. CMS does not sign that set; the TSTInfo
    # and the signed attributes, which are the evidence, are the seed's.
    from asn1crypto import cms

    from loadtest.fuzz_oracle import token_evidence
    from merkle.anchors.rfc3161 import verify_token

    token = seeds.tokens()[0]
    ci = cms.ContentInfo.load(token)
    ci["content"]["digest_algorithms"] = [{"algorithm": "2.16.840.1.101.11.107"}]
    changed = ci.dump(force=True)
    body = next(b for b, recs in seeds.anchors.items() if any(a["type"] == "rfc3161" for a in recs))
    assert changed != token
    verify_token(changed, body=body, trusted_cas=targets.cas)
    assert token_evidence(changed) == token_evidence(token) is not None
    targets.token(changed)


def test_a_local_block_whose_origin_is_not_utf8_is_malformed(seeds: Seeds) -> None:
    # Found by Hypothesis: a lone surrogate in a local block's origin (which Python's json.loads
    # gives for "\ud800"; orjson refuses it) raised TypeError out of verify_receipt, whose contract
    # is never to raise for a malformed receipt. In v2 the whole receipt is malformed: an anchor
    # record must be JSON, and such a string has no JSON form.
    r = copy.deepcopy(next(r for r in seeds.receipts if r["anchors"]))
    r["anchors"][0]["origin"] = "\ud800" + r["anchors"][0]["origin"]
    result = verify_receipt(r, keys=seeds.keys, anchor_verifiers=seeds.anchor_verifiers())
    assert [c.name for c in result.failed] == ["format"] and len(result.checks) == 1
    assert "anchors[0]: an anchor record holds a value that is not JSON" in result.checks[0].detail
