"""`notar receipt upgrade` accepts only the same notarization, proven in a tree no smaller, verifying
under the trusted keys and consistent with the old one; `notar receipt export --format cose` signs
only a root that the receipt's checkpoint, opened under the server's own log key, states (SPEC §5).
Receipts are built here with merkle/ and the keys of a data directory: no server runs."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from merkle import Anchor, Checkpoint, Receipt, Signer, Tree, leaf_hash, make_entry, parse_digest, verify_cose
from merkle.checkpoint import sign_checkpoint
from merkle.cosignature import CosignatureSigner
from merkle.export import parse_tlog_proof
from services.anchor.app import ensure_keys, keys_from
from services.cli import main
from services.cli.receipt import accept_upgrade
from services.cli.receipt_files import beside, is_receipt_file, replace_if_held, write_new
from services.cli.verify import load_receipt
from services.common.components import load
from storage.errors import VerificationError

ORIGIN = "export.notar.test/log"
DIGESTS = [parse_digest(f"sha256:{i:064x}") for i in range(40)]
SALTS = [bytes([i]) * 16 for i in range(40)]
SUBJECT = "acme"


def entries(n: int = 40) -> list[bytes]:
    return [make_entry(d, s, SUBJECT) for d, s in zip(DIGESTS[:n], SALTS[:n], strict=True)]


def receipt(log: Signer, clock: CosignatureSigner, tree: Tree, size: int, index: int = 9) -> Receipt:
    note = sign_checkpoint(Checkpoint(log.name, size, tree.root(size)), log, clock, 1_700_000_000 + size)
    return Receipt.build(
        digest=DIGESTS[index], salt=SALTS[index], subject=SUBJECT, origin=log.name, index=index,
        tree_size=size, inclusion=tree.inclusion_proof(index, size), checkpoint=note,
    )  # fmt: skip


@pytest.fixture
def signers() -> tuple[Signer, CosignatureSigner, list[str]]:
    log, clock = Signer.generate(ORIGIN), CosignatureSigner.generate(ORIGIN + "/clock")
    return log, clock, [log.verifier().to_key(), clock.verifier().to_key()]


def test_an_upgrade_to_a_consistent_larger_tree_is_accepted(
    signers: tuple[Signer, CosignatureSigner, list[str]],
) -> None:
    log, clock, keys = signers
    tree = Tree([leaf_hash(e) for e in entries()])
    old, new = receipt(log, clock, tree, 20), receipt(log, clock, tree, 37)
    trusted = lambda size: keys  # noqa: E731 - the same keys at every size
    accept_upgrade(old, new, trusted, tree.consistency_proof(20, 37))
    accept_upgrade(new, new, trusted, [])  # the same tree: nothing to prove

    refusals = {
        "changes salt": (dataclasses.replace(new, salt=bytes(16)), tree.consistency_proof(20, 37)),
        "changes .*index": (receipt(log, clock, tree, 37, index=10), tree.consistency_proof(20, 37)),
        "smaller tree": (receipt(log, clock, tree, 12), []),
        "fails check 'inclusion'": (
            dataclasses.replace(new, inclusion=new.inclusion[::-1]),
            tree.consistency_proof(20, 37),
        ),
        "not consistent": (new, tree.consistency_proof(19, 37)),
    }
    for why, (candidate, proof) in refusals.items():
        with pytest.raises(VerificationError, match=why):
            accept_upgrade(old, candidate, trusted, proof)

    other = Tree([leaf_hash(e) for e in entries()[:19] + [bytes(33)] + entries()[20:]])  # entry 19 differs
    with pytest.raises(VerificationError, match="not consistent"):
        accept_upgrade(old, receipt(log, clock, other, 37), trusted, other.consistency_proof(20, 37))
    stranger = Signer.generate(ORIGIN)  # the log's name, another key: a server that is not that log
    with pytest.raises(VerificationError, match="fails check 'log signature'"):
        accept_upgrade(old, receipt(stranger, clock, tree, 37), trusted, tree.consistency_proof(20, 37))
    # keys trusted only for smaller trees (a retired key) do not vouch for the new checkpoint
    with pytest.raises(VerificationError, match="fails check 'log signature'"):
        accept_upgrade(old, new, lambda size: keys if size <= 20 else [], tree.consistency_proof(20, 37))


def test_upgrades_go_beside_and_no_receipt_is_ever_overwritten(
    tmp_path: Path, signers: tuple[Signer, CosignatureSigner, list[str]]
) -> None:
    log, clock, _ = signers
    tree = Tree([leaf_hash(e) for e in entries()])
    path = tmp_path / "deed.pdf.receipt.json"
    old, new = receipt(log, clock, tree, 20), receipt(log, clock, tree, 37)
    assert beside(path, 37) == tmp_path / "deed.pdf.receipt.37.json"
    assert beside(tmp_path / "deed.pdf.receipt.37.json", 40) == tmp_path / "deed.pdf.receipt.40.json"
    assert beside(tmp_path / "r.json", 5) == tmp_path / "r.5.json"
    names = ["a.pdf.receipt.json", "a.pdf.receipt.37.json", ".a.pdf.receipt.json.123.0a1b2c3d.tmp"]
    assert all(is_receipt_file(n) for n in names)
    assert not any(is_receipt_file(n) for n in ["a.pdf", "receipt.json.pdf", "a.receipt.x.json"])
    assert write_new(path, old) and load_receipt(path) == old
    assert not write_new(path, new) and load_receipt(path) == old, "a receipt is never overwritten"
    more = dataclasses.replace(old, anchors=(Anchor.from_obj({"type": "x-local", "n": 1}),))
    assert replace_if_held(path, more, old) and load_receipt(path) == more, "the same, with an anchor more"
    assert not replace_if_held(path, old, more) and load_receipt(path) == more, "it would lose the anchor"
    assert not replace_if_held(path, new, more), "another checkpoint"
    assert [p.name for p in tmp_path.iterdir()] == [path.name], "no temporary file left"


@pytest.fixture
def data_dir(tmp_path: Path) -> tuple[Path, Signer, CosignatureSigner]:
    config = load(
        flags={"DATA_DIR": str(tmp_path / "data"), "ORIGIN": ORIGIN}, env={}, config_file=None
    )
    ensure_keys(config.keys)
    keys = keys_from(config.keys)
    return tmp_path / "data", keys.log, keys.clock


def test_cose_export_signs_only_a_root_its_own_checkpoint_states(
    tmp_path: Path, data_dir: tuple[Path, Signer, CosignatureSigner], capsys: pytest.CaptureFixture[str]
) -> None:
    data, log, clock = data_dir
    tree = Tree([leaf_hash(e) for e in entries()])
    genuine = receipt(log, clock, tree, 37)
    path = tmp_path / "r.receipt.json"
    path.write_bytes(genuine.to_json())
    out = tmp_path / "r.cose"
    args = ["receipt", "export", "--data-dir", str(data), "--origin", ORIGIN]
    assert main([*args, "--format", "cose", str(path), "--out", str(out)]) == 0
    cose = verify_cose(out.read_bytes(), log.verifier())
    assert (cose.root, cose.tree_size, cose.index) == (tree.root(37), 37, 9)
    assert main([*args, "--format", "tlog-proof", str(path)]) == 0
    assert parse_tlog_proof(capsys.readouterr().out).entry == genuine.entry

    made_up = Tree([leaf_hash(e) for e in entries()[:36] + [bytes(33)]])  # a root no checkpoint of it states
    forgeries = {
        "signed by another key of the log's name": receipt(Signer.generate(ORIGIN), clock, tree, 37),
        "of another log": receipt(Signer.generate("elsewhere.example/log"), clock, tree, 37),
        "whose proof leads elsewhere": dataclasses.replace(
            genuine, inclusion=tuple(made_up.inclusion_proof(9))
        ),
    }
    for what, forged in forgeries.items():
        path.write_bytes(forged.to_json())
        assert main([*args, "--format", "cose", str(path), "--out", str(tmp_path / "x.cose")]) == 2, what
        err = capsys.readouterr().err
        assert err.startswith(f"notar: will not sign a COSE receipt for {path}") and err.count("\n") == 1, err
        assert not (tmp_path / "x.cose").exists()
