"""A third-party check of `notar witness serve`: Go's golang.org/x/mod/sumdb/note opens the
checkpoint the witness serves (the log's signature and the witness's cosignature).

x/mod's note package knows only Ed25519 (type 0x01): it refuses the witness's tlog-cosignature/v1
key (type 0x04), as the Go program reports. The cosignature is therefore checked by a note.Verifier
written in Go from the spec's byte layout (tests/conformance/witness/main.go) and called by
x/mod's note.Open; the negative cases show it fails on a changed checkpoint and another key.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from merkle.cosignature import CosignatureSigner, CosignatureVerifier
from merkle.note import Signature, Signer, open_note, parse_note
from merkle.witness import checkpoint_path
from tests.conformance.gobuild import build
from tests.services.witness.harness import TestLog, WitnessProcess, http, keygen

LOG = TestLog("go.example/log", Signer("go.example/log", bytes([7]) * 32))


@pytest.fixture(scope="module")
def checker(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build(Path(__file__).parent / "witness", tmp_path_factory.mktemp("go"), "notar-witness-check")


@dataclass
class Cosigned:
    note: Path
    witness: CosignatureVerifier


@pytest.fixture(scope="module")
def cosigned(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cosigned]:
    tmp = tmp_path_factory.mktemp("witness")
    key = CosignatureVerifier.from_key(keygen(tmp / "w", "go.example/witness"))
    (tmp / "logs.txt").write_text(LOG.vkey + "\n")
    w = WitnessProcess(tmp / "w", tmp / "logs.txt").start()
    try:
        assert w.post("/add-checkpoint", LOG.body(0, 9)).status == 200
        served = http(w.url + checkpoint_path(LOG.origin))
        assert served.status == 200
    finally:
        w.stop()
    (tmp / "note").write_bytes(served.body)
    yield Cosigned(tmp / "note", key)


def run(checker: Path, note: Path, witness: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(checker), "-log", LOG.vkey, "-witness", witness, str(note)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_go_x_mod_note_verifies_the_cosignature(checker: Path, cosigned: Cosigned) -> None:
    r = run(checker, cosigned.note, cosigned.witness.to_key())
    assert r.returncode == 0, r.stdout + r.stderr
    # What x/mod itself says of a cosignature key (the report's "x/mod does not know type 0x04").
    assert "info x/mod NewVerifier(witness key): unknown verifier algorithm" in r.stdout
    opened = open_note(cosigned.note.read_text(), [cosigned.witness])
    time = cosigned.witness.timestamp(opened.verified[0].signature)
    expected = f"ok   witness cosignature: by go.example/witness over go.example/log size 9 at time {time}"
    assert expected in r.stdout


def test_go_refuses_a_changed_checkpoint(checker: Path, cosigned: Cosigned, tmp_path: Path) -> None:
    text = cosigned.note.read_text()
    body = parse_note(text).text
    changed = tmp_path / "changed"
    changed.write_text(text.replace(body, body.replace("\n9\n", "\n8\n"), 1))
    r = run(checker, changed, cosigned.witness.to_key())
    assert r.returncode == 1 and "FAIL note.Open" in r.stdout


def test_go_refuses_another_witness_key(checker: Path, cosigned: Cosigned) -> None:
    # Same name, another key: its key hash differs, so note.Open finds no signature of it.
    other = CosignatureSigner("go.example/witness", bytes([8]) * 32).verifier().to_key()
    r = run(checker, cosigned.note, other)
    assert r.returncode == 1 and "FAIL note.Open" in r.stdout


def test_go_refuses_a_cosignature_of_another_time(checker: Path, cosigned: Cosigned, tmp_path: Path) -> None:
    # The log's signature still verifies; only the witness's line changed (its timestamp, +1 s).
    parsed = parse_note(cosigned.note.read_text())
    lines = []
    for sig in parsed.signatures:
        if sig.name == cosigned.witness.name:
            later = (int.from_bytes(sig.signature[:8], "big") + 1).to_bytes(8, "big") + sig.signature[8:]
            sig = Signature(sig.name, sig.key_id, later)
        lines.append(sig.line())
    changed = tmp_path / "later"
    changed.write_text(parsed.text + "\n" + "".join(lines))
    r = run(checker, changed, cosigned.witness.to_key())
    assert r.returncode == 1 and "FAIL note.Open" in r.stdout and "invalid signature" in r.stdout
