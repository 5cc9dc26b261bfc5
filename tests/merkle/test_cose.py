"""merkle.cose: RFC 9679 thumbprints, COSE keys of log keys, and notar's COSE receipt profile
(one tree-head signature per checkpoint, proofs of the signed size only)."""

from __future__ import annotations

import hashlib

import cbor2
import pytest

from merkle import leaf_hash, open_checkpoint
from merkle.cose import (
    SignedTreeHead,
    ed25519_key,
    key_set,
    log_kid,
    read_receipt,
    receipt,
    sign_tree_head,
    thumbprint,
    verify_receipt,
)
from merkle.note import Signer
from tests.merkle.logs import ORIGIN, make_log

LOG = make_log()


def entry(index: int) -> bytes:
    return LOG.receipt(index).entry


def test_rfc9679_example_thumbprint() -> None:
    # RFC 9679 §6: the EC2 P-256 key of RFC 9052's examples and its thumbprint.
    key = {
        1: 2,
        -1: 1,
        -2: bytes.fromhex("65eda5a12577c2bae829437fe338701a10aaa375e1bb5b5de108de439c08551d"),
        -3: bytes.fromhex("1e52ed75701163f7f9e40ddf9f341b3dc9ba860af7e0ca7ca7e9eecd0084d19c"),
        2: b"meriadoc.brandybuck@buckland.example",
    }
    assert thumbprint(key).hex() == "496bd8afadf307e5b08c64b0421bf9dc01528a344a43bda88fadd1669da253ec"
    with pytest.raises(ValueError, match="key type"):
        thumbprint({1: 4, -1: b"k"})
    with pytest.raises(ValueError, match="lacks"):
        thumbprint({1: 1, -1: 6})


def test_a_log_key_as_a_cose_key() -> None:
    public = LOG.signer.verifier().public_key
    key = ed25519_key(public)
    assert key == {1: 1, -1: 6, -2: public, 2: log_kid(public), 3: -8}
    assert log_kid(public) == hashlib.sha256(cbor2.dumps({1: 1, -1: 6, -2: public})).digest()
    other = Signer.generate(ORIGIN).verifier().public_key
    assert cbor2.loads(key_set([public, other, public])) == [key, ed25519_key(other)]


def head() -> SignedTreeHead:
    opened = open_checkpoint(
        LOG.note, origin=ORIGIN, log_verifiers=[LOG.signer.verifier()], clock_verifiers=[LOG.clock.verifier()]
    )
    return sign_tree_head(opened, LOG.signer)


def test_one_tree_head_signature_serves_every_entry_of_the_tree() -> None:
    h = sign_tree_head(
        open_checkpoint(LOG.note, origin=ORIGIN, log_verifiers=[LOG.signer.verifier()]), LOG.signer
    )
    receipts = [receipt(h, i, LOG.tree.inclusion_proof(i, LOG.tree.size), entry(i)) for i in (0, 5, 36)]
    signatures = {cbor2.loads(r).value[3] for r in receipts}
    assert len(signatures) == 1
    for i, r in zip((0, 5, 36), receipts, strict=True):
        got = verify_receipt(r, [LOG.signer.verifier()])
        assert (got.index, got.tree_size, got.root, got.entry) == (
            i,
            LOG.tree.size,
            LOG.checkpoint.root,
            entry(i),
        )
        assert got.issuer == ORIGIN and got.issued_at is None
    with pytest.raises(ValueError, match="does not lead"):
        receipt(h, 1, LOG.tree.inclusion_proof(0, LOG.tree.size), entry(0))


def test_receipts_refuse_other_keys_entries_and_headers() -> None:
    h = head()
    data = receipt(h, 3, LOG.tree.inclusion_proof(3, LOG.tree.size), entry(3))
    assert verify_receipt(data, [LOG.signer.verifier()]).issued_at is not None  # iat: the clock's time
    with pytest.raises(ValueError, match="not trusted"):
        verify_receipt(data, [Signer.generate(ORIGIN).verifier()])
    with pytest.raises(ValueError, match="signature"):
        verify_receipt(data, [LOG.signer.verifier()], entry=entry(4))
    renamed = Signer(ORIGIN + "2", LOG.signer.seed).verifier()
    with pytest.raises(ValueError, match="issuer"):
        verify_receipt(data, [renamed])
    protected, unprotected, payload, signature = cbor2.loads(data).value
    header = cbor2.loads(protected)
    header[15][6] += 1  # a later time: the protected header is signed
    forged = cbor2.dumps(cbor2.CBORTag(18, [cbor2.dumps(header), unprotected, payload, signature]))
    with pytest.raises(ValueError, match="signature"):
        verify_receipt(forged, [LOG.signer.verifier()])
    del header[15][6]
    header.pop("notar.tree_size")
    plain = cbor2.dumps(cbor2.CBORTag(18, [cbor2.dumps(header), unprotected, payload, signature]))
    with pytest.raises(ValueError, match=r"notar\.tree_size"):
        read_receipt(plain)


def test_the_leaf_is_the_entry_hashed_as_rfc9162_says() -> None:
    got = verify_receipt(
        receipt(head(), 7, LOG.tree.inclusion_proof(7, LOG.tree.size), entry(7)),
        [LOG.signer.verifier()],
    )
    assert leaf_hash(got.entry) == hashlib.sha256(b"\x00" + entry(7)).digest()
