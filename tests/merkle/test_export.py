"""Exports (SPEC §5): C2SP tlog-proof@v1 whose extra data rebuilds the entry, and RFC 9942 COSE
receipts signed only over a root that a verified checkpoint of the same log states."""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import hashlib

import cbor2
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from hypothesis import given
from hypothesis import strategies as st

from merkle import (
    OpenedCheckpoint,
    Signer,
    leaf_hash,
    open_checkpoint,
    parse_tlog_proof,
    to_cose,
    to_tlog_proof,
    verify_cose,
    verify_inclusion,
)
from merkle.export import parse_tlog_extra, tlog_extra
from tests.merkle.logs import ORIGIN, make_log

LOG = make_log()
RECEIPT = LOG.receipt(index=21)
OTHER = make_log("other.example/log")


def opened(*, keys: list[Signer] | None = None) -> OpenedCheckpoint:
    signers = keys if keys is not None else [LOG.signer]
    return open_checkpoint(LOG.note, origin=ORIGIN, log_verifiers=[s.verifier() for s in signers])


def test_tlog_proof_extra_is_salt_subject_multihash() -> None:
    extra = tlog_extra(RECEIPT)
    assert extra == RECEIPT.salt + bytes([4]) + b"acme" + RECEIPT.digest.multihash
    assert parse_tlog_extra(extra) == (RECEIPT.digest, RECEIPT.salt, "acme")


def test_tlog_proof_round_trip_rebuilds_the_entry() -> None:
    text = to_tlog_proof(RECEIPT)
    head = text.split("\n\n")[0].split("\n")
    assert head[0] == "c2sp.org/tlog-proof@v1" and head[1].startswith("extra ") and head[2] == "index 21"
    p = parse_tlog_proof(text)
    assert (p.index, p.digest, p.salt, p.subject, p.checkpoint) == (
        21,
        RECEIPT.digest,
        RECEIPT.salt,
        "acme",
        LOG.note,
    )
    assert p.entry == RECEIPT.entry and p.proof == list(RECEIPT.inclusion)
    # a verifier with only the document and this text proves the entry is in the signed tree
    assert verify_inclusion(leaf_hash(p.entry), p.index, LOG.tree.size, p.proof, LOG.checkpoint.root)


def test_non_ascii_subject_in_extra() -> None:
    r = dataclasses.replace(RECEIPT, subject="Müller")
    assert parse_tlog_proof(to_tlog_proof(r)).subject == "Müller"


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode()


GOOD_EXTRA = _b64(tlog_extra(RECEIPT))


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "c2sp.org/tlog-proof@v2\nextra " + GOOD_EXTRA + "\nindex 1\n\nx\n",
        "c2sp.org/tlog-proof@v1\nindex 1\n\nx\n",  # no extra: the entry cannot be rebuilt
        "c2sp.org/tlog-proof@v1\nextra " + GOOD_EXTRA + "\nindex 01\n\nx\n",
        "c2sp.org/tlog-proof@v1\nextra " + GOOD_EXTRA + "\nindex 1\nnotbase64\n\nx\n",
        "c2sp.org/tlog-proof@v1\nextra " + GOOD_EXTRA + "\nindex 1\nAAAA\n\nx\n",
        "c2sp.org/tlog-proof@v1\nextra !!\nindex 1\n\nx\n",
        "c2sp.org/tlog-proof@v1\nextra " + GOOD_EXTRA + "\nindex 1\n",
        "c2sp.org/tlog-proof@v1\nextra " + _b64(tlog_extra(RECEIPT) + b"\x00") + "\nindex 1\n\nx\n",
        "c2sp.org/tlog-proof@v1\nextra "
        + _b64(RECEIPT.salt + b"\x00" + RECEIPT.digest.multihash)
        + "\nindex 1\n\nx\n",
        "c2sp.org/tlog-proof@v1\nextra "
        + _b64(RECEIPT.salt + b"\x02\xff\xfe" + RECEIPT.digest.multihash)
        + "\nindex 1\n\nx\n",
        "c2sp.org/tlog-proof@v1\nextra " + _b64(RECEIPT.salt[:8]) + "\nindex 1\n\nx\n",
    ],
)
def test_tlog_proof_parser_refuses_malformed(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_tlog_proof(bad)


@given(st.binary(max_size=120))
def test_tlog_extra_parser_only_raises_value_error(data: bytes) -> None:
    with contextlib.suppress(ValueError):
        parse_tlog_extra(data)


def test_cose_receipt_is_rfc9942_shaped_and_verifies_independently() -> None:
    data = to_cose(RECEIPT, opened(), LOG.signer)
    assert data[0] == 0xD2  # tag 18, COSE_Sign1
    protected_raw, unprotected, payload, signature = cbor2.loads(data[1:])
    protected = cbor2.loads(protected_raw)
    assert protected[1] == -8 and protected[395] == 1  # EdDSA, RFC9162_SHA256
    assert protected["notar.tree_size"] == 37  # the size is signed
    # kid: the RFC 9679 thumbprint of the log key, as an OKP COSE key {1: 1, -1: 6, -2: x}
    okp = cbor2.dumps({1: 1, -1: 6, -2: LOG.signer.verifier().public_key})
    assert protected[4] == hashlib.sha256(okp).digest()
    assert protected[15] == {1: ORIGIN, 2: ORIGIN}  # iss and sub: the log (no clock key given)
    assert payload is None  # detached: the root
    size, index, path = cbor2.loads(unprotected[396][-1][0])
    assert (size, index) == (37, 21) and tuple(path) == RECEIPT.inclusion
    assert unprotected["notar.entry"] == RECEIPT.entry
    # Independent check with nothing but cbor2 and the Ed25519 public key (RFC 9052 Sig_structure).
    root = LOG.checkpoint.root
    Ed25519PublicKey.from_public_bytes(LOG.signer.verifier().public_key).verify(
        signature, cbor2.dumps(["Signature1", protected_raw, b"", root])
    )
    assert verify_cose(data, LOG.signer.verifier()).root == root


def test_cose_export_signs_only_a_root_a_verified_checkpoint_states() -> None:
    with pytest.raises(ValueError, match="not verified under the log key"):
        to_cose(RECEIPT, opened(keys=[]), LOG.signer)  # nothing verified it
    with pytest.raises(ValueError, match="not verified under the log key"):
        to_cose(RECEIPT, opened(), Signer.generate(ORIGIN))  # another key of the same name
    with pytest.raises(ValueError, match="not verified under the log key"):
        to_cose(RECEIPT, opened(), OTHER.signer)  # another log's key
    other_size = dataclasses.replace(RECEIPT, tree_size=36)
    with pytest.raises(ValueError, match="the receipt is of tree 36"):
        to_cose(other_size, opened(), LOG.signer)
    forged = dataclasses.replace(RECEIPT, inclusion=(bytes(32), *RECEIPT.inclusion[1:]))
    with pytest.raises(ValueError, match="does not lead to the checkpoint's root"):
        to_cose(forged, opened(), LOG.signer)
    wrong_index = dataclasses.replace(RECEIPT, index=20)
    with pytest.raises(ValueError, match="does not lead"):
        to_cose(wrong_index, opened(), LOG.signer)


def test_cose_receipt_carries_the_clock_time_when_the_checkpoint_was_opened_with_it() -> None:
    clocked = open_checkpoint(
        LOG.note,
        origin=ORIGIN,
        log_verifiers=[LOG.signer.verifier()],
        clock_verifiers=[LOG.clock.verifier()],
    )
    data = to_cose(RECEIPT, clocked, LOG.signer)
    assert clocked.cosigned_time is not None
    assert verify_cose(data, LOG.signer.verifier()).issued_at == clocked.cosigned_time


def test_a_cose_receipt_relabelled_to_another_tree_size_is_refused() -> None:
    # RFC 9942 signs the root alone: one path leads to the same root from (index 21, size 37) and
    # other pairs. The size signed in the protected header pins it down.
    protected, unprotected, payload, signature = cbor2.loads(to_cose(RECEIPT, opened(), LOG.signer)[1:])
    size, index, path = cbor2.loads(unprotected[396][-1][0])
    unprotected[396] = {-1: [cbor2.dumps([size + 1, index, path])]}
    relabelled = b"\xd2" + cbor2.dumps([protected, unprotected, payload, signature])
    with pytest.raises(ValueError, match="signed tree size is 37"):
        verify_cose(relabelled, LOG.signer.verifier())


def test_cose_receipt_refuses_tampering() -> None:
    data = bytearray(to_cose(RECEIPT, opened(), LOG.signer))
    with pytest.raises(ValueError):
        verify_cose(bytes(data), OTHER.signer.verifier())
    data[-1] ^= 1
    with pytest.raises(ValueError):
        verify_cose(bytes(data), LOG.signer.verifier())
    with pytest.raises(ValueError):
        verify_cose(to_cose(RECEIPT, opened(), LOG.signer), LOG.signer.verifier(), entry=b"\x02" * 33)


@given(st.binary(max_size=400))
def test_cose_parser_only_raises_value_error(data: bytes) -> None:
    with contextlib.suppress(ValueError):
        verify_cose(b"\xd2" + data, LOG.signer.verifier())
