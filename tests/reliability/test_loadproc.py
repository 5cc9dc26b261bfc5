"""The load process's record crosses a process boundary as JSON (loadtest/reliability/loadproc.py):
every field of every acknowledged receipt comes back, the shard's origin included (the overload
scenario's readers compare it with what verify serves)."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter

from loadtest.reliability.loadproc import record_from_json, record_to_json
from loadtest.reliability.workload import Acked, Record


def test_a_record_comes_back_whole_from_json() -> None:
    record = Record(
        acked=[
            Acked(
                "sha256:" + "ab" * 32,
                "00" * 16,
                "acme",
                "02" + "cd" * 32,
                7,
                9,
                ("ee" * 32,),
                "note",
                "o/log/1",
            ),
            Acked("sha256:" + "12" * 32, "11" * 16, "acme", "02" + "34" * 32, 8, 9, (), "note"),
        ]
    )
    record.checkpoints = {"a", "b"}
    record.statuses = Counter({"200": 3})
    back = record_from_json(json.loads(json.dumps(record_to_json(record))))
    assert [dataclasses.astuple(a) for a in back.acked] == [dataclasses.astuple(a) for a in record.acked]
    assert back.acked[0].origin == "o/log/1" and back.acked[1].origin == ""
    assert back.checkpoints == {"a", "b"} and back.statuses == Counter({"200": 3})
