"""v2 log entry vectors (vectors/entry_v2.json): each one recomputed by a short reference written
from SPEC §1 with hashlib alone, and by merkle.make_entry / make_entries."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from merkle import ENTRY_NOTAR, make_entries, make_entry, parse_digest, parse_entry

VECTORS: list[dict[str, Any]] = json.loads(
    (Path(__file__).parent / "vectors" / "entry_v2.json").read_text(encoding="utf-8")
)["vectors"]


def ref_entry(digest_text: str, salt_hex: str, subject: str) -> str:
    """SPEC §1, read directly: 0x02 || SHA-256("notar.entry.v2" 0x00 salt multihash u8(len) subject)."""
    alg, value = digest_text.split(":")
    mh = bytes([{"blake3": 0x1E, "sha256": 0x12}[alg], 32]) + bytes.fromhex(value)
    subj = subject.encode("utf-8")
    body = b"notar.entry.v2" + b"\x00" + bytes.fromhex(salt_hex) + mh + bytes([len(subj)]) + subj
    return "02" + hashlib.sha256(body).hexdigest()


@pytest.mark.parametrize("v", VECTORS, ids=[v["name"] for v in VECTORS])
def test_vector(v: dict[str, Any]) -> None:
    assert ref_entry(v["digest"], v["salt"], v["subject"]) == v["entry"]
    entry = make_entry(parse_digest(v["digest"]), bytes.fromhex(v["salt"]), v["subject"])
    assert entry.hex() == v["entry"]
    assert parse_entry(entry) == ENTRY_NOTAR


def test_batch_helper_gives_the_vectors() -> None:
    for subject in {v["subject"] for v in VECTORS}:
        mine = [v for v in VECTORS if v["subject"] == subject]
        got = make_entries(
            [parse_digest(v["digest"]) for v in mine], [bytes.fromhex(v["salt"]) for v in mine], subject
        )
        assert [e.hex() for e in got] == [v["entry"] for v in mine]


def test_vectors_are_all_distinct_and_cover_the_edges() -> None:
    assert len({v["entry"] for v in VECTORS}) == len(VECTORS)
    lengths = {len(v["subject"].encode()) for v in VECTORS}
    assert {1, 64} <= lengths and any(len(v["subject"].encode()) != len(v["subject"]) for v in VECTORS)
    assert {v["digest"].split(":")[0] for v in VECTORS} == {"blake3", "sha256"}
