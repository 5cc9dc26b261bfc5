"""The chaos workload's reader takes an earlier notarization of the same digest by the same tenant
(a request sequenced twice: a resend whose first send landed after all) for what it is, and
anything else served instead of the acknowledged receipt for a contradiction."""

from __future__ import annotations

import os
from typing import Any

from loadtest.reliability.workload import Acked, earlier_notarization
from merkle.digests import make_entry, parse_digest

DIGEST = "sha256:" + "ab" * 32


def _acked(index: int, origin: str = "o/log") -> Acked:
    salt = os.urandom(16)
    entry = make_entry(parse_digest(DIGEST), salt, "acme").hex()
    return Acked(DIGEST, salt.hex(), "acme", entry, index, index + 1, (), "note", origin)


def _served(index: int, origin: str = "o/log", subject: str = "acme", digest: str = DIGEST) -> dict[str, Any]:
    salt = os.urandom(16)
    entry = make_entry(parse_digest(digest), salt, subject).hex()
    return {"salt": salt.hex(), "subject": subject, "entry": entry, "log": {"origin": origin, "index": index}}


def test_an_earlier_notarization_in_the_same_log_or_another_is_not_a_contradiction() -> None:
    want = _acked(2095)
    assert earlier_notarization(_served(2069), want)
    assert earlier_notarization(_served(9000, origin="o/log/1"), want)  # another shard: its time decided


def test_a_later_index_another_tenant_another_digest_or_a_forged_entry_is() -> None:
    want = _acked(2095)
    assert not earlier_notarization(_served(2095), want)  # the same index with another entry
    assert not earlier_notarization(_served(3000), want)
    assert not earlier_notarization(_served(10, subject="globex"), want)
    assert not earlier_notarization(_served(10, digest="sha256:" + "cd" * 32), want)
    forged = _served(10)
    forged["entry"] = "02" + "00" * 32
    assert not earlier_notarization(forged, want)
    assert not earlier_notarization({"log": {}}, want)
    assert not earlier_notarization({**_served(10), "salt": "zz"}, want)
