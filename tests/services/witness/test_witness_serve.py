"""`notar witness keygen|serve` as real processes on loopback: the C2SP tlog-witness protocol
(cosign, 409, 422, 403, 404, 400), the monitoring route, restarts, ML-DSA-44 and key rotation."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from merkle.checkpoint import Checkpoint, parse_checkpoint
from merkle.cosignature import CosignatureSigner, CosignatureVerifier
from merkle.keyhistory import Rotation, clock_key_name
from merkle.mldsa import MLDSA44CosignatureVerifier
from merkle.note import Signature, Signer, open_note, parse_note, sign_note
from merkle.witness import (
    SIZE_CONTENT_TYPE,
    add_checkpoint_body,
    checkpoint_path,
    merge_cosignatures,
)
from services.witness.keys import key_path, load_keys
from tests.services.witness.harness import NOTAR, TestLog, WitnessProcess, http, keygen

A = "log.example/a"
LOG = TestLog(A, Signer(A, bytes([1]) * 32))
OTHER = TestLog("log.example/b", Signer("log.example/b", bytes([2]) * 32))
FORK = TestLog(A, LOG.signer, fork_at=8)  # same key, other entries from index 8 on
IMPOSTOR = Signer(A, bytes([3]) * 32)  # a key with the log's name that the witness does not trust
VECTORS = json.loads((Path(__file__).parents[2] / "merkle/vectors/tlog_witness.json").read_text("utf-8"))
TORCHWOOD = VECTORS["mldsa44_log_checkpoint"]


def logs_file(tmp: Path, *vkeys: str) -> Path:
    path = tmp / "logs.txt"
    path.write_text("# the logs this witness cosigns\n\n" + "".join(f"  {k}\n" for k in vkeys))
    return path


@pytest.fixture
def witness(tmp_path: Path) -> Iterator[tuple[WitnessProcess, CosignatureVerifier]]:
    vkey = keygen(tmp_path / "w", "witness.test/w1")
    process = WitnessProcess(tmp_path / "w", logs_file(tmp_path, LOG.vkey, OTHER.vkey)).start()
    yield process, CosignatureVerifier.from_key(vkey)
    process.stop()


def cosign(w: WitnessProcess, key: CosignatureVerifier, log: TestLog, old: int, size: int) -> str:
    """Submit and return the log's note with the witness's verified cosignature merged in."""
    answer = w.post("/add-checkpoint", log.body(old, size))
    assert answer.status == 200, answer.text
    assert answer.content_type.startswith("text/plain")
    return merge_cosignatures(log.note(size), answer.body, [key])


def test_keygen_prints_the_key_alone_on_the_last_line(tmp_path: Path) -> None:
    data = tmp_path / "w"
    vkey = keygen(data, "witness.test/k")
    (signer,) = load_keys(data)
    assert signer.verifier().to_key() == vkey and CosignatureVerifier.from_key(vkey).name == "witness.test/k"
    assert key_path(data, "ed25519").stat().st_mode & 0o777 == 0o600
    before = key_path(data, "ed25519").read_bytes()
    again = subprocess.run([NOTAR, "witness", "keygen", "--data-dir", str(data)], capture_output=True,
                           text=True, timeout=60)
    assert again.returncode == 2 and "never overwritten" in again.stderr and "Traceback" not in again.stderr
    assert key_path(data, "ed25519").read_bytes() == before
    pq = keygen(data, "witness.test/pq", "ml-dsa-44")
    assert MLDSA44CosignatureVerifier.from_key(pq).name == "witness.test/pq"
    assert {s.verifier().to_key() for s in load_keys(data)} == {vkey, pq}


def test_growing_checkpoints_are_cosigned(witness: tuple[WitnessProcess, CosignatureVerifier]) -> None:
    w, key = witness
    old = 0
    for size in (0, 5, 5, 17, 64):
        started = int(time.time())
        note = cosign(w, key, LOG, old, size)
        opened = open_note(note, [LOG.signer.verifier(), key])
        assert opened.ok and len(opened.verified) == 2
        assert started <= key.timestamp(opened.verified[1].signature) <= int(time.time())
        old = size
    served = http(w.url + checkpoint_path(A))
    assert served.status == 200
    opened = open_note(served.text, [LOG.signer.verifier(), key])
    assert opened.ok and {s.name for s in opened.verified} == {A, key.name}
    assert parse_checkpoint(parse_note(served.text).text).size == 64
    assert http(w.url + checkpoint_path(OTHER.origin)).status == 404  # never cosigned
    assert http(w.url + "/" + "0" * 64 + "/checkpoint").status == 404


def test_refusals_follow_the_spec(witness: tuple[WitnessProcess, CosignatureVerifier]) -> None:
    w, key = witness
    cosign(w, key, LOG, 0, 10)
    for old in (0, 5, 11):  # not the size it holds: 409 with that size
        answer = w.post("/add-checkpoint", LOG.body(old, 12))
        assert (answer.status, answer.content_type, answer.body) == (409, SIZE_CONTENT_TYPE, b"10\n")
    assert w.post("/add-checkpoint", add_checkpoint_body(10, [], LOG.note(8))).status == 400  # old > size
    # A fork (same key, other entries from 8 on): at the size held, and grown from it.
    assert w.post("/add-checkpoint", FORK.body(10, 10)).status == 422
    assert w.post("/add-checkpoint", add_checkpoint_body(10, LOG.tree.consistency_proof(10, 30),
                                                         FORK.note(30))).status == 422
    assert w.post("/add-checkpoint", add_checkpoint_body(10, [bytes(32)] * 4, LOG.note(30))).status == 422
    # Signatures: an untrusted key of the same name, a trusted key's signature that fails.
    assert w.post("/add-checkpoint", LOG.body(10, 12, IMPOSTOR)).status == 403
    parsed = parse_note(LOG.note(12))
    (sig,) = parsed.signatures
    flipped = Signature(sig.name, sig.key_id, bytes([sig.signature[0] ^ 1]) + sig.signature[1:])
    broken = parsed.text + "\n" + flipped.line()
    proof = LOG.tree.consistency_proof(10, 12)
    assert w.post("/add-checkpoint", add_checkpoint_body(10, proof, broken)).status == 403
    unknown = TestLog("log.example/unknown", Signer("log.example/unknown", bytes(32)))
    assert w.post("/add-checkpoint", unknown.body(0, 3)).status == 404
    for garbage in (b"", b"hello", b"old 10\n\nnot a note\n", b"old 10\n\n\xff\xfe", b"\x00" * 100):
        answer = w.post("/add-checkpoint", garbage)
        assert answer.status == 400 and answer.content_type == "application/problem+json"
    assert w.post("/add-checkpoint", b"old 10\n" + b"A" * 300_000).status == 413
    # Size 0 must have the empty root, and nothing needs a proof from size 0.
    bogus = sign_note(Checkpoint(OTHER.origin, 0, bytes(32)).format(), [OTHER.signer])
    assert w.post("/add-checkpoint", add_checkpoint_body(0, [], bogus)).status == 422
    assert w.post("/add-checkpoint", add_checkpoint_body(0, [bytes(32)], OTHER.note(4))).status == 422
    # None of that moved the witness: it still holds size 10 of the log's own tree.
    assert parse_checkpoint(parse_note(http(w.url + checkpoint_path(A)).text).text).size == 10
    cosign(w, key, LOG, 10, 12)


def test_state_survives_a_restart(witness: tuple[WitnessProcess, CosignatureVerifier]) -> None:
    w, key = witness
    cosign(w, key, LOG, 0, 30)
    cosign(w, key, OTHER, 0, 7)
    before = http(w.url + checkpoint_path(A)).body
    w.stop()
    w.start()
    assert http(w.url + checkpoint_path(A)).body == before
    assert w.post("/add-checkpoint", LOG.body(0, 40)).body == b"30\n"
    assert w.post("/add-checkpoint", OTHER.body(0, 40)).body == b"7\n"
    assert w.post("/add-checkpoint", FORK.body(30, 30)).status == 422
    cosign(w, key, LOG, 30, 40)


def test_rotation_moves_trust_to_the_new_key(witness: tuple[WitnessProcess, CosignatureVerifier]) -> None:
    w, key = witness
    new = Signer(A, bytes([4]) * 32)
    clock = CosignatureSigner(clock_key_name(A), bytes([5]) * 32)
    statement = Rotation(A, 25, LOG.signer.verifier(), new.verifier(), clock.verifier()).sign(LOG.signer)
    cosign(w, key, LOG, 0, 20)
    answer = w.post("/rotate", statement.encode())
    assert answer.status == 200 and new.verifier().to_key() in answer.text
    assert w.post("/rotate", statement.encode()).status == 200  # the same statement again: no change
    assert w.post("/add-checkpoint", LOG.body(20, 24, new)).status == 403  # the new key starts at 25
    cosign(w, key, LOG, 20, 24)  # the old key still signs below 25
    renewed = TestLog(A, new)
    answer = w.post("/add-checkpoint", renewed.body(24, 25))
    assert answer.status == 200  # the handover size: both keys may sign it
    cosign(w, key, LOG, 25, 25)
    assert w.post("/add-checkpoint", LOG.body(25, 26)).status == 403  # the old key, above its period
    cosign(w, key, renewed, 25, 26)
    # Statements the witness refuses.
    third = Signer(A, bytes([6]) * 32)
    clock3 = CosignatureSigner(clock_key_name(A), bytes([7]) * 32)
    by_retired = Rotation(A, 30, LOG.signer.verifier(), third.verifier(), clock3.verifier()).sign(LOG.signer)
    assert w.post("/rotate", by_retired.encode()).status == 409
    by_stranger = Rotation(A, 30, IMPOSTOR.verifier(), third.verifier(), clock3.verifier()).sign(IMPOSTOR)
    assert w.post("/rotate", by_stranger.encode()).status == 403
    backwards = Rotation(A, 10, new.verifier(), third.verifier(), clock3.verifier()).sign(new)
    assert w.post("/rotate", backwards.encode()).status == 422
    c_old, c_new = Signer("log.example/c", bytes([8]) * 32), Signer("log.example/c", bytes([9]) * 32)
    c_clock = CosignatureSigner("log.example/c/clock", bytes(32))
    unknown = Rotation("log.example/c", 1, c_old.verifier(), c_new.verifier(), c_clock.verifier()).sign(c_old)
    assert w.post("/rotate", unknown.encode()).status == 404
    assert w.post("/rotate", b"notar.key-rotation.v1\n\n").status == 400
    # The rotation is durable.
    w.kill()
    w.start()
    assert w.post("/add-checkpoint", LOG.body(26, 27)).status == 403
    cosign(w, key, renewed, 26, 27)


def test_ml_dsa_44_witness_cosigns_torchwoods_ml_dsa_log(tmp_path: Path) -> None:
    """litewitness's own test case (a log signing with ML-DSA-44), with both cosignature types."""
    data = tmp_path / "w"
    ed = CosignatureVerifier.from_key(keygen(data, "witness.test/ed"))
    pq = MLDSA44CosignatureVerifier.from_key(keygen(data, "witness.test/pq", "ml-dsa-44"))
    w = WitnessProcess(data, logs_file(tmp_path, TORCHWOOD["vkey"])).start()
    try:
        answer = w.post("/add-checkpoint", TORCHWOOD["witness_request_body"].encode())
        assert answer.status == 200, answer.text
        assert len(answer.text.splitlines()) == 2
        merged = merge_cosignatures(TORCHWOOD["note"], answer.body, [ed, pq])
        opened = open_note(merged, [ed, pq])
        assert opened.ok and {s.name for s in opened.verified} == {ed.name, pq.name}
        assert pq.timestamp(next(s for s in opened.verified if s.name == pq.name).signature) > 0
    finally:
        w.stop()


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (["# comment", LOG.vkey, "not+a+key"], "line 3 is not a log verifier key"),
        ([LOG.vkey, "", LOG.vkey], "line 3 names origin 'log.example/a' a second time"),
        (["# nothing"], "lists no log"),
    ],
)
def test_a_bad_logs_file_stops_start_up(tmp_path: Path, lines: list[str], message: str) -> None:
    keygen(tmp_path / "w", "witness.test/w1")
    path = tmp_path / "logs.txt"
    path.write_text("\n".join(lines) + "\n")
    r = subprocess.run(
        [NOTAR, "witness", "serve", "--data-dir", str(tmp_path / "w"), "--listen", "127.0.0.1:1",
         "--logs", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr


def test_no_key_stops_start_up(tmp_path: Path) -> None:
    r = subprocess.run(
        [NOTAR, "witness", "serve", "--data-dir", str(tmp_path / "none"), "--logs",
         str(logs_file(tmp_path, LOG.vkey))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2 and "notar witness keygen" in r.stderr
