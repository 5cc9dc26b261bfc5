"""kill -9 of `notar witness serve` at random instants under concurrent submissions: every
cosignature it ever returned shows one root per size per log, one branch of a forked log, and
after each restart it still holds at least the largest size it had answered.

Two logs, each with two branches that share their first FORK_AT entries (a log that forked, both
branches signed by its key). Submitters follow the witness with 409s and pick a branch at random:
a witness that answered before its state was durable, or that let two requests past the check
against one state, would cosign both branches, or two roots for one size, across the kills.
"""

from __future__ import annotations

import random
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from merkle.checkpoint import parse_checkpoint
from merkle.cosignature import CosignatureVerifier
from merkle.note import Signer, open_note, parse_note
from merkle.witness import checkpoint_path, merge_cosignatures, parse_size
from tests.services.witness.harness import TestLog, WitnessProcess, http, keygen

LEAVES, FORK_AT = 96, 24
CYCLES = 8  # kills
SUBMITTERS_PER_LOG = 2
DEADLINE_S = 120.0  # the whole run, whatever happens
MAX_REQUESTS = 4000  # per submitter


@dataclass
class Cosigned:
    """Every cosignature returned: (origin, size) -> roots, and the branch of each root."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    roots: dict[tuple[str, int], set[bytes]] = field(default_factory=lambda: defaultdict(set))
    branches: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    max_size: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    count: int = 0
    errors: list[str] = field(default_factory=list)

    def add(self, log: TestLog, size: int) -> None:
        with self.lock:
            self.roots[(log.origin, size)].add(log.root(size))
            if size > FORK_AT:
                self.branches[log.origin].add("fork" if log.fork_at else "main")
            self.max_size[log.origin] = max(self.max_size[log.origin], size)
            self.count += 1


def submit(url: str, key: CosignatureVerifier, branches: list[TestLog], seed: int, stop: threading.Event,
           seen: Cosigned) -> None:
    rng = random.Random(seed)
    known = 0
    for _ in range(MAX_REQUESTS):
        if stop.is_set():
            return
        log = rng.choice(branches)
        size = rng.randint(known, min(LEAVES, known + 12))
        try:
            answer = http(url + "/add-checkpoint", log.body(known, size), timeout=10)
        except OSError:  # the witness is down: try again soon
            time.sleep(0.02)
            continue
        if answer.status == 200:
            try:
                merge_cosignatures(log.note(size), answer.body, [key])
            except ValueError as e:
                seen.errors.append(f"a cosignature that does not verify: {e}")
            seen.add(log, size)
            known = size
        elif answer.status == 409:
            known = parse_size(answer.body)
        elif answer.status != 422:  # 422: the other branch, refused
            seen.errors.append(f"{answer.status}: {answer.text[:200]}")


def test_kill_9_never_yields_two_roots_for_one_size(tmp_path: Path) -> None:
    rng = random.Random(20260716)
    key = CosignatureVerifier.from_key(keygen(tmp_path / "w", "witness.test/crash"))
    logs: dict[str, list[TestLog]] = {}
    for name in ("crash.example/a", "crash.example/b"):
        signer = Signer(name, rng.randbytes(32))
        logs[name] = [TestLog(name, signer, LEAVES), TestLog(name, signer, LEAVES, fork_at=FORK_AT)]
    logs_file = tmp_path / "logs.txt"
    logs_file.write_text("".join(branches[0].vkey + "\n" for branches in logs.values()))
    w = WitnessProcess(tmp_path / "w", logs_file).start()
    stop, seen = threading.Event(), Cosigned()
    threads = [
        threading.Thread(target=submit, args=(w.url, key, log, rng.randrange(2**32), stop, seen), daemon=True)
        for log in logs.values()
        for _ in range(SUBMITTERS_PER_LOG)
    ]
    deadline = time.monotonic() + DEADLINE_S
    try:
        for t in threads:
            t.start()
        for _ in range(CYCLES):
            time.sleep(rng.uniform(0.05, 0.8))
            w.kill()
            w.start()
            with seen.lock:
                answered = dict(seen.max_size)  # every answer so far came before the kill, or after
            for origin, size in answered.items():  # the restart: it is on disk
                served = http(w.url + checkpoint_path(origin))
                assert served.status == 200, f"{origin}: answered up to {size}, holds nothing after kill -9"
                held = parse_checkpoint(parse_note(served.text).text)
                assert held.size >= size, f"{origin}: answered size {size}, holds {held.size} after kill -9"
                assert open_note(served.text, [key]).ok
            assert time.monotonic() < deadline, "the crash test ran out of time"
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
        w.stop()
    assert not seen.errors, seen.errors[:5]
    assert seen.count >= CYCLES, f"only {seen.count} cosignatures: the load did not run"
    forked = {origin: sizes for origin, sizes in seen.branches.items() if len(sizes) > 1}
    assert not forked, f"the witness cosigned both branches of {sorted(forked)}"
    two = {k: v for k, v in seen.roots.items() if len(v) > 1}
    assert not two, f"two roots for one size: {sorted(two)[:5]}"
