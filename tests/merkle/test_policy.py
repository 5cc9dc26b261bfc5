"""C2SP tlog-policy (merkle.policy): the spec's example with real keys, every syntax rule, and the
quorum against a short independent reference over random policies."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from merkle.checkpoint import Checkpoint
from merkle.checks import Status
from merkle.cosignature import CosignatureSigner
from merkle.mldsa import MLDSA44CosignatureSigner
from merkle.note import Signer, add_signatures, parse_note, sign_note
from merkle.policy import NONE, check_witnesses, parse_policy

VECTORS: dict[str, Any] = json.loads(
    (Path(__file__).parent / "vectors" / "tlog_witness.json").read_text(encoding="utf-8")
)
EXAMPLE = VECTORS["policy_example"]
ORIGIN = "example.org/log"
LOG = Signer(ORIGIN, bytes(32))
W = {n: CosignatureSigner(f"w.example/{n}", bytes([i + 1]) * 32) for i, n in enumerate(EXAMPLE["witnesses"])}
NOTE = sign_note(Checkpoint(ORIGIN, 42, bytes(range(32))).format(), [LOG])
T = 1_700_000_000


def example_policy() -> str:
    """The spec's example with its elided keys filled in, in the order they appear."""
    text: str = EXAMPLE["text"]
    text = text.replace("log <vkey>", f"log {LOG.verifier().to_key()}", 1)
    for name, signer in W.items():
        text = text.replace(f"witness {name} <vkey>", f"witness {name} {signer.verifier().to_key()}")
    assert "<vkey>" not in text
    return text


def cosigned(note: str, *names: str) -> str:
    return add_signatures(note, [W[n].at(T) for n in names]) if names else note


def test_spec_example() -> None:
    policy = parse_policy(example_policy())
    assert [w.name for w in policy.witnesses] == EXAMPLE["witnesses"]
    assert {g.name: g.threshold for g in policy.groups} == EXAMPLE["groups"]
    assert policy.quorum == EXAMPLE["quorum"] and policy.log_keys(ORIGIN) == [LOG.verifier()]
    assert parse_policy(policy.format()) == policy
    # Two X witnesses and one Y witness: met. One short on either side: not met.
    assert check_witnesses(cosigned(NOTE, "X1", "X3", "Y2"), policy).status is Status.OK
    assert check_witnesses(cosigned(NOTE, "X1", "Y1", "Y2", "Y3"), policy).status is Status.FAILED
    assert check_witnesses(cosigned(NOTE, "X1", "X2", "X3"), policy).status is Status.FAILED
    verdict = policy.evaluate(cosigned(NOTE, "X2", "Y3"))
    assert (verdict.log, verdict.cosigned, verdict.quorum_met) == (ORIGIN, ("X2", "Y3"), False)


def test_the_three_statuses() -> None:
    policy = parse_policy(example_policy())
    assert check_witnesses(NOTE, None).status is Status.NOT_CHECKED
    none = parse_policy(f"log {LOG.verifier().to_key()}\nquorum none\n")
    assert none.quorum == NONE and none.quorum_met(())
    assert check_witnesses(NOTE, none).status is Status.NOT_CHECKED
    # A policy witness's line that does not verify fails the check even when the quorum is met.
    good = cosigned(NOTE, "X1", "X2", "Y1")
    other = sign_note(Checkpoint(ORIGIN, 43, bytes(32)).format(), [W["Y2"].at(T)])
    forged = good + other.split("\n\n", 1)[1]
    check = check_witnesses(forged, policy)
    assert check.status is Status.FAILED and "Y2" in check.detail
    assert check_witnesses("not a note", policy).status is Status.FAILED


def test_ml_dsa_witnesses_and_urls() -> None:
    pq = MLDSA44CosignatureSigner("w.example/pq", bytes(32))
    policy = parse_policy(
        f"  log\t{LOG.verifier().to_key()}  https://log.example/ \n"
        f"witness PQ {pq.verifier().to_key()} https://pq.example/witness\n"
        "# a comment\n   # another\n\t\n"
        "quorum PQ"  # no final newline
    )
    assert policy.logs[0].url == "https://log.example/" and policy.witnesses[0].url == "https://pq.example/witness"
    note = add_signatures(NOTE, [pq.at(T)])
    assert check_witnesses(note, policy).status is Status.OK
    assert parse_policy(policy.format()) == policy


def test_names_are_opaque_octets() -> None:
    kelvin = "\u212a"  # KELVIN SIGN, not the letter K
    text = f"witness K {W['X1'].verifier().to_key()}\nwitness {kelvin} {W['X2'].verifier().to_key()}\n"
    policy = parse_policy((text + f"quorum {kelvin}\n").encode("utf-8"))
    assert policy.quorum_met([kelvin]) and not policy.quorum_met(["K"])
    octet = parse_policy(b"witness \xff " + W["X1"].verifier().to_key().encode() + b"\nquorum \xff\n")
    assert octet.quorum_met(["\udcff"])  # the octet 0xff, not valid UTF-8, is a name too


X1, X2 = W["X1"].verifier().to_key(), W["X2"].verifier().to_key()


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "no quorum line"),
        (f"witness A {X1}\nquorum A\nquorum A\n", "exactly one quorum"),
        ("quorum A\n", "defined above"),
        (f"quorum A\nwitness A {X1}\n", "defined above"),
        (f"witness A {X1}\nwitness A {X2}\nquorum A\n", "already defined"),
        (f"witness none {X1}\nquorum none\n", "reserved"),
        (f"witness A {X1}\nwitness B {X1}\nquorum A\n", "twice"),
        (f"log {LOG.verifier().to_key()}\nlog {LOG.verifier().to_key()}\nquorum none\n", "twice"),
        (f"witness A {LOG.verifier().to_key()}\nquorum A\n", "not a cosignature key"),
        (f"witness A {X1} url extra\nquorum A\n", "at most one URL"),
        (f"witness A {X1}\ngroup G 2 A\nquorum G\n", "threshold"),
        (f"witness A {X1}\ngroup G 0 A\nquorum G\n", "threshold"),
        (f"witness A {X1}\ngroup G 01 A\nquorum G\n", "threshold"),
        (f"witness A {X1}\ngroup G any A A\nquorum G\n", "twice"),
        (f"witness A {X1}\ngroup G any A none\nquorum G\n", "defined above"),
        (f"witness A {X1}\ngroup G any\nquorum G\n", "members"),
        (f"witness A {X1}\ngroup G any B\nwitness B {X2}\nquorum G\n", "defined above"),
        (f"witness A {X1}\nquorum A\nlogs x\n", "unknown keyword"),
        (f"witness A {X1}\r\nquorum A\n", "control character"),
        (f"witness A {X1[:-2]}\nquorum A\n", "policy line 1"),
        ("log\nquorum none\n", "needs a key"),
    ],
)
def test_syntax_errors_name_the_line(text: str, why: str) -> None:
    with pytest.raises(ValueError, match=why) as info:
        parse_policy(text)
    assert str(info.value).startswith("policy line") or "no quorum" in str(info.value)


def reference_met(groups: list[tuple[str, int, list[str]]], quorum: str, signed: set[str]) -> bool:
    """Ten lines, recursive: a name is witnessed if it signed, or is a group with enough members."""
    table = {name: (k, members) for name, k, members in groups}

    def witnessed(name: str) -> bool:
        if name not in table:
            return name in signed
        k, members = table[name]
        return sum(witnessed(m) for m in members) >= k

    return quorum == NONE or witnessed(quorum)


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_quorum_matches_the_reference(data: st.DataObject) -> None:
    names = list(W)
    groups: list[tuple[str, int, list[str]]] = []
    for i in range(data.draw(st.integers(0, 4))):
        pool = names + [g[0] for g in groups]
        members = data.draw(st.lists(st.sampled_from(pool), min_size=1, max_size=len(pool), unique=True))
        groups.append((f"G{i}", data.draw(st.integers(1, len(members))), members))
    quorum = data.draw(st.sampled_from([NONE, *names, *[g[0] for g in groups]]))
    lines = [f"witness {n} {W[n].verifier().to_key()}" for n in names]
    lines += [f"group {g} {k} {' '.join(m)}" for g, k, m in groups]
    policy = parse_policy("\n".join([*lines, f"quorum {quorum}"]) + "\n")
    signed = set(data.draw(st.lists(st.sampled_from(names), unique=True)))
    expected = reference_met(groups, quorum, signed)
    assert policy.quorum_met(signed) == expected
    note = cosigned(NOTE, *sorted(signed))
    assert set(policy.evaluate(note).cosigned) == signed
    status = check_witnesses(note, policy).status
    assert status is (Status.NOT_CHECKED if quorum == NONE else Status.OK if expected else Status.FAILED)
    assert parse_note(note).text == parse_note(NOTE).text


def test_the_documented_policy_parses() -> None:
    doc = (Path(__file__).parents[2] / "docs" / "witness.md").read_text(encoding="utf-8")
    start = doc.index("    # example.org/log before and after")
    block = doc[start : doc.index("quorum all-of-it", start) + len("quorum all-of-it")]
    policy = parse_policy(block)
    assert len(policy.logs) == 2 and policy.quorum == "all-of-it"
    assert policy.quorum_met(["clock-2", "w2"]) and not policy.quorum_met(["clock-1", "clock-2"])
