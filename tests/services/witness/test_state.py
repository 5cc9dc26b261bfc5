"""The witness's state files (services.witness.state) and its decisions (services.witness.protocol)
without a server: what a restart reads back, what it refuses, and the spec's order of refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from merkle.cosignature import CosignatureSigner
from merkle.keyhistory import KeyHistory, Rotation, clock_key_name
from merkle.note import Signer
from merkle.witness import add_checkpoint_body, origin_hash, parse_add_checkpoint
from services.witness.protocol import Accepted, Refused, check_add_checkpoint, check_rotation
from services.witness.state import StateStore
from storage.errors import ConfigError
from tests.services.witness.harness import TestLog

A = "state.example/log"
LOG = TestLog(A, Signer(A, bytes([1]) * 32))
NEW = Signer(A, bytes([2]) * 32)
CLOCK = CosignatureSigner(clock_key_name(A), bytes([3]) * 32)
ROTATION = Rotation(A, 5, LOG.signer.verifier(), NEW.verifier(), CLOCK.verifier()).sign(LOG.signer)


def test_saved_state_reads_back(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    assert store.load({A: LOG.signer.verifier()})[A].checkpoint is None
    store.save_checkpoint(A, LOG.note(7))
    store.save_rotation(A, 1, ROTATION)
    (tmp_path / "logs" / origin_hash(A) / ".tmp-leftover").write_text("half a write")
    state = StateStore(tmp_path).load({A: LOG.signer.verifier()})[A]
    assert state.note == LOG.note(7) and state.checkpoint is not None and state.checkpoint.size == 7
    assert state.history.current.log == NEW.verifier() and state.history.statements == (ROTATION,)
    assert not list((tmp_path / "logs" / origin_hash(A)).glob(".tmp-*"))
    # The logs file may name any key of the stored history, the first or the current one.
    assert StateStore(tmp_path).load({A: NEW.verifier()})[A].history.current.log == NEW.verifier()


def test_a_state_it_cannot_trust_stops_start_up(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    store.save_rotation(A, 1, ROTATION)
    stranger = Signer(A, bytes([9]) * 32).verifier()
    with pytest.raises(ConfigError, match="never name"):
        StateStore(tmp_path).load({A: stranger})
    store.save_checkpoint(A, "not a checkpoint\n")
    with pytest.raises(ConfigError, match="not a signed checkpoint"):
        StateStore(tmp_path).load({A: LOG.signer.verifier()})
    store.save_checkpoint(A, LOG.note(3))
    store.save_rotation(A, 2, ROTATION)  # the same statement twice does not chain
    with pytest.raises(ConfigError, match="do not chain"):
        StateStore(tmp_path).load({A: LOG.signer.verifier()})


def test_refusals_come_in_the_spec_order() -> None:
    history = KeyHistory.start(LOG.signer.verifier())
    held = parse_add_checkpoint(LOG.body(0, 10)).checkpoint

    def check(body: bytes, known: bool = True) -> int:
        request = parse_add_checkpoint(body)
        decision = check_add_checkpoint(request, history=history if known else None, held=held)
        return decision.status if isinstance(decision, Refused) else 200

    impostor = Signer(A, bytes([9]) * 32)
    assert check(LOG.body(3, 12, impostor), known=False) == 404  # unknown before anything else
    assert check(LOG.body(3, 12, impostor)) == 403  # a bad signature before a wrong old size
    assert check(add_checkpoint_body(12, [], LOG.note(11))) == 400  # old > size before old != held
    assert check(LOG.body(3, 12)) == 409
    assert check(add_checkpoint_body(10, [bytes(32)], LOG.note(12))) == 422
    assert check(LOG.body(10, 12)) == 200
    accepted = check_add_checkpoint(parse_add_checkpoint(LOG.body(10, 10)), history=history, held=held)
    assert isinstance(accepted, Accepted) and [s.name for s in accepted.log_signatures] == [A]


def test_rotation_decisions() -> None:
    history = KeyHistory.start(LOG.signer.verifier())
    rotated = check_rotation(ROTATION, history=history)
    assert isinstance(rotated, KeyHistory) and rotated.current.log == NEW.verifier()
    assert check_rotation(ROTATION, history=rotated) == rotated  # known: no change
    refused = check_rotation(ROTATION.replace("from 5", "from 6"), history=history)
    assert isinstance(refused, Refused) and refused.status == 403  # the text changed: the signature fails
    assert check_rotation(ROTATION, history=None) == Refused(404, f"this witness does not know the log {A!r}")
