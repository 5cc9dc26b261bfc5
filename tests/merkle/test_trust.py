"""merkle.trust and verify_receipt with a key history and a witness policy: every key of the history
counts in its period, a key outside it fails with words that say so, and the `witnesses` check."""

from __future__ import annotations

import orjson
import pytest

from merkle import Checkpoint, Receipt, Signer, Status, Trust, verify_receipt
from merkle.checkpoint import sign_checkpoint
from merkle.cosignature import CosignatureSigner
from merkle.keyhistory import Rotation, clock_key_name
from merkle.note import add_signatures
from tests.merkle.logs import ORIGIN, SIGNED_AT, make_log

LOG = make_log(n=48)
LOGS = [Signer(ORIGIN, bytes([i]) * 32) for i in range(1, 4)]
CLOCKS = [CosignatureSigner(clock_key_name(ORIGIN), bytes([50 + i]) * 32) for i in range(1, 4)]
HANDOVER = [10, 30]  # LOGS[1] from 10, LOGS[2] from 30
STATEMENTS = [
    Rotation(ORIGIN, at, LOGS[i].verifier(), LOGS[i + 1].verifier(), CLOCKS[i + 1].verifier()).sign(LOGS[i])
    for i, at in enumerate(HANDOVER)
]
WITNESS = CosignatureSigner("witness.example/w1", b"\x99" * 32)


def receipt(size: int, log: Signer, clock: CosignatureSigner, index: int = 3) -> Receipt:
    """The receipt of entry ``index`` in the tree of ``size``, signed by ``log`` and ``clock``."""
    tree = LOG.tree
    cp = Checkpoint(ORIGIN, size, tree.root(size))
    good = LOG.receipt(index)
    return Receipt.build(
        digest=good.digest,
        salt=good.salt,
        subject=good.subject,
        origin=ORIGIN,
        index=index,
        tree_size=size,
        inclusion=tree.inclusion_proof(index, size),
        checkpoint=sign_checkpoint(cp, log, clock, SIGNED_AT),
    )


def policy(quorum: str = "clock", witnesses: str = "") -> str:
    logs = "".join(f"log {k.verifier().to_key()}\n" for k in LOGS)
    clocks = "".join(f"witness clock-{i} {c.verifier().to_key()}\n" for i, c in enumerate(CLOCKS))
    return f"{logs}{clocks}group clock any clock-0 clock-1 clock-2\n{witnesses}quorum {quorum}\n"


TRUST = Trust.from_policy(policy(), STATEMENTS)


def statuses(r: Receipt, trust: Trust) -> dict[str, Status]:
    return {c.name: c.status for c in verify_receipt(r, keys=trust).checks}


@pytest.mark.parametrize(("size", "key"), [(5, 0), (10, 0), (10, 1), (11, 1), (30, 1), (30, 2), (48, 2)])
def test_each_key_of_the_history_verifies_in_its_period(size: int, key: int) -> None:
    result = verify_receipt(
        receipt(size, LOGS[key], CLOCKS[key]), keys=TRUST, digest=str(LOG.receipt(3).digest)
    )
    assert result.valid, result.failed
    assert [c.status for c in result.checks] == [Status.OK] * len(result.checks)
    assert result.check("witnesses") is not None


@pytest.mark.parametrize(("size", "key"), [(11, 0), (48, 0), (31, 1), (9, 1), (29, 2)])
def test_a_key_outside_its_period_fails_the_log_signature_saying_so(size: int, key: int) -> None:
    result = verify_receipt(receipt(size, LOGS[key], CLOCKS[key]), keys=TRUST)
    check = result.check("log signature")
    assert check is not None and check.status is Status.FAILED
    assert LOGS[key].verifier().to_key() in check.detail
    assert f"of size {size}, outside that period" in check.detail
    start = [0, *HANDOVER][key]
    until = "on" if key == 2 else f"to {HANDOVER[key]}"
    assert f"only for tree sizes {start} {until}" in check.detail
    clock = result.check("signed time")
    assert clock is not None and clock.status is Status.FAILED and "outside that period" in clock.detail
    # the same keys given with --key (no history) are trusted at every size
    flat = [LOGS[key].verifier().to_key(), CLOCKS[key].verifier().to_key()]
    assert verify_receipt(receipt(size, LOGS[key], CLOCKS[key]), keys=flat).valid


def test_a_clock_key_outside_its_period_fails_the_signed_time() -> None:
    r = receipt(20, LOGS[1], CLOCKS[0])
    got = statuses(r, TRUST)
    assert got["log signature"] is Status.OK and got["signed time"] is Status.FAILED
    assert "outside that period" in verify_receipt(r, keys=TRUST).check("signed time").detail  # type: ignore[union-attr]


def test_the_first_clock_is_the_policy_clock_no_statement_names() -> None:
    history = TRUST.history(ORIGIN)
    assert history is not None
    assert [p.clock for p in history.periods] == [c.verifier() for c in CLOCKS]
    assert [(p.from_size, p.until_size) for p in history.periods] == [(0, 10), (10, 30), (30, None)]
    assert TRUST.logs == () and TRUST.clocks == ()  # every policy key is in the history


def test_statements_must_chain_from_a_key_of_the_policy() -> None:
    stranger = Signer(ORIGIN, b"\x42" * 32)
    other = Rotation(ORIGIN, 5, stranger.verifier(), LOGS[1].verifier(), CLOCKS[1].verifier()).sign(stranger)
    with pytest.raises(ValueError, match="do not start from a log key of the policy"):
        Trust.from_policy(policy(), [other, *STATEMENTS[1:]])
    with pytest.raises(ValueError, match="rotation statement 2"):
        Trust.from_policy(policy(), [STATEMENTS[1], STATEMENTS[0]])
    # without statements every policy key is trusted at every size, as with --key
    flat = Trust.from_policy(policy())
    assert verify_receipt(receipt(48, LOGS[0], CLOCKS[0]), keys=flat).valid


def test_the_witnesses_check_follows_the_policy_quorum() -> None:
    line = f"witness w1 {WITNESS.verifier().to_key()}\ngroup all-of-it all clock w1\n"
    trust = Trust.from_policy(policy("all-of-it", line), STATEMENTS)
    plain = receipt(40, LOGS[2], CLOCKS[2])
    check = verify_receipt(plain, keys=trust).check("witnesses")
    assert check is not None and check.status is Status.FAILED and "not met" in check.detail
    obj = orjson.loads(plain.to_json())
    witnessed = Receipt.from_obj(
        {**obj, "checkpoint": add_signatures(plain.checkpoint, [WITNESS.at(SIGNED_AT + 1)])}
    )
    result = verify_receipt(witnessed, keys=trust)
    assert result.valid and result.check("witnesses").status is Status.OK  # type: ignore[union-attr]
    none = Trust.from_policy(policy("none"), STATEMENTS)
    assert verify_receipt(plain, keys=none).check("witnesses").status is Status.NOT_CHECKED  # type: ignore[union-attr]
    assert (
        verify_receipt(plain, keys=[k.verifier().to_key() for k in (LOGS[2], CLOCKS[2])]).check("witnesses")
        is None
    )  # no policy, no witnesses check
