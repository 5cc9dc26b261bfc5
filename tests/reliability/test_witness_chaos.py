"""kill -9 of a witness under load (loadtest/reliability/scenarios/witness.py): nothing
acknowledged is lost, no witness signs two roots for one size, the quorum is met again."""

from __future__ import annotations

from pathlib import Path

import pytest

from loadtest.reliability.witnesses import Cosignatures, WitnessPod
from merkle.checkpoint import Checkpoint
from merkle.cosignature import CosignatureSigner
from merkle.note import sign_note
from tests.reliability.conftest import run_scenario


async def test_kill_9_of_a_witness_loses_nothing_and_forks_nothing(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    outcome = await run_scenario("kill9-witness", tmp_path, request)
    assert outcome.faults >= 6
    assert outcome.verdict["acknowledged"] > 0 and outcome.verdict["lost"] == 0
    assert outcome.extra["witnesses"]["cosigned checkpoints seen"] > 0


def test_two_roots_for_one_size_are_reported_and_unsigned_checkpoints_refused(tmp_path: Path) -> None:
    w1, w2 = (CosignatureSigner.generate(f"w{i}.chaos.test/w") for i in (1, 2))
    pods = [WitnessPod(s.name, 0, tmp_path / s.name, tmp_path / "logs") for s in (w1, w2)]
    for pod, signer in zip(pods, (w1, w2), strict=True):
        pod.vkey = signer.verifier().to_key()

    def note(size: int, root: bytes, signer: CosignatureSigner) -> str:
        return sign_note(Checkpoint("chaos.test/log", size, root).format(), [signer.at(1_700_000_000)])

    seen = Cosignatures()
    a, b = bytes(32), bytes([1]) * 32
    seen.add(pods[0], note(5, a, w1), "served")
    seen.add(pods[1], note(5, a, w2), "stored")
    seen.add(pods[0], note(6, a, w1), "served")
    assert seen.forks() == [] and seen.problems == []
    seen.add(pods[1], note(6, b, w2), "stored")  # w2 cosigned another root than w1 for size 6
    assert seen.forks() == ["2 roots cosigned for tree size 6"]
    seen.add(pods[0], note(6, b, w1), "served")  # and w1 signed both
    assert "witness w1.chaos.test/w signed 2 roots for tree size 6" in seen.forks()
    seen.add(pods[0], note(7, a, w2), "served")  # w2's cosignature presented as w1's
    assert seen.problems == ["served: a checkpoint without w1.chaos.test/w's cosignature"]
    assert seen.seen == 5
