"""Real `notar witness serve` processes beside a chaos cluster, and the record of what they cosigned.

A ``WitnessPod`` keeps its data directory and port across restarts, like a pod with its volume.
``Cosignatures`` collects every cosigned checkpoint seen — each witness's latest one, polled from
its monitoring endpoint while the load runs, and those the anchor stored — each checked to carry
that witness's cosignature; ``forks()`` names every tree size seen with two roots: no witness
may ever sign two roots for one size, and every witness cosigns the one log.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from merkle.checkpoint import parse_checkpoint
from merkle.cosignature import verifier_from_key
from merkle.note import NoteVerifier, parse_note, verify_note
from merkle.witness import checkpoint_path
from services.published import layout
from storage.base import ObjectStore

from .cluster import READY_S, terminate, wait_ready


@dataclass
class WitnessPod:
    """One `notar witness serve` for the logs of ``logs_file`` (one log verifier key a line)."""

    name: str
    port: int
    data: Path
    logs_file: Path
    vkey: str = ""
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def key(self) -> NoteVerifier:
        return verifier_from_key(self.vkey)

    def keygen(self) -> str:
        """`notar witness keygen`: the witness's verifier key (its last line of output)."""
        done = subprocess.run(
            [sys.executable, "-m", "services.cli", "witness", "keygen", "--data-dir", str(self.data),
             "--name", self.name],
            capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip
        self.vkey = done.stdout.splitlines()[-1]
        return self.vkey

    def start(self) -> None:
        cmd = [sys.executable, "-m", "services.cli", "witness", "serve", "--data-dir", str(self.data),
               "--listen", f"127.0.0.1:{self.port}", "--logs", str(self.logs_file)]  # fmt: skip
        with open(self.data.with_suffix(".log"), "ab") as out:
            out.write(f"--- start {self.starts} at {time.time():.3f}\n".encode())
            out.flush()
            self.process = subprocess.Popen(
                cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        self.starts += 1

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill9(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout=30)

    def terminate(self) -> int | None:
        return terminate(self.process, 30.0)

    def wait_ready(self, timeout: float = READY_S) -> None:
        wait_ready(self.url, self.process, f"witness {self.name}", self.tail, timeout)

    def latest(self, origin: str) -> str | None:
        """The checkpoint of ``origin`` it cosigned last, or None (none yet, or it is down)."""
        try:
            with urllib.request.urlopen(self.url + checkpoint_path(origin), timeout=2) as r:
                return bytes(r.read()).decode("utf-8")
        except (urllib.error.URLError, OSError, UnicodeDecodeError):
            return None

    def tail(self, chars: int = 3000) -> str:
        log = self.data.with_suffix(".log")
        return log.read_text(errors="replace")[-chars:] if log.exists() else ""


@dataclass
class Cosignatures:
    """Every cosigned checkpoint seen: (size, root) per witness, and the problems met."""

    roots: dict[int, set[bytes]] = field(default_factory=lambda: defaultdict(set))
    by_witness: dict[str, dict[int, set[bytes]]] = field(default_factory=lambda: defaultdict(dict))
    seen: int = 0
    problems: list[str] = field(default_factory=list)

    def add(self, witness: WitnessPod, note: str, where: str) -> None:
        if not verify_note(parse_note(note), [witness.key]).verified:
            self.problems.append(f"{where}: a checkpoint without {witness.name}'s cosignature")
            return
        cp = parse_checkpoint(parse_note(note).text)
        self.roots[cp.size].add(cp.root)
        self.by_witness[witness.name].setdefault(cp.size, set()).add(cp.root)
        self.seen += 1

    def forks(self) -> list[str]:
        """Every size with two roots: per witness ("signed two roots"), then across witnesses."""
        out = [
            f"witness {name} signed {len(roots)} roots for tree size {size}"
            for name, sizes in self.by_witness.items()
            for size, roots in sizes.items()
            if len(roots) > 1
        ]
        out += [f"{len(r)} roots cosigned for tree size {s}" for s, r in self.roots.items() if len(r) > 1]
        return out

    async def poll(self, witnesses: list[WitnessPod], origin: str, stop: asyncio.Event) -> None:
        """Each witness's latest cosigned checkpoint, every 0.1 s until ``stop``."""
        while not stop.is_set():
            for w in witnesses:
                note = await asyncio.to_thread(w.latest, origin)
                if note is not None:
                    self.add(w, note, f"{w.url}{checkpoint_path(origin)}")
            await asyncio.sleep(0.1)

    async def read_store(self, store: ObjectStore, witnesses: list[WitnessPod], prefix: str) -> None:
        """The cosigned checkpoints the anchor stored (``services.published.witnessed``)."""
        ids = {layout.witness_id(w.vkey): w for w in witnesses}
        base = layout.witnessed(prefix)
        async for key in store.list(base):
            witness = ids.get(key[len(base) :].partition("/")[2])
            if witness is None:
                self.problems.append(f"{key}: stored for no witness of WITNESSES")
                continue
            self.add(witness, (await store.get(key)).decode("utf-8"), key)
