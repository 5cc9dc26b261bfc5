"""Test logs that submit to a real `notar witness serve` process, and the process itself."""

from __future__ import annotations

import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from merkle.checkpoint import Checkpoint
from merkle.hashing import leaf_hash
from merkle.note import NoteSigner, Signer, sign_note
from merkle.proofs import Tree
from merkle.witness import add_checkpoint_body
from tests.serving import free_port, stop_process, wait_ready

NOTAR = str(Path(sys.executable).with_name("notar"))


@dataclass
class TestLog:
    """A log of ``origin`` over ``leaves`` entries, signing with ``signer``; ``fork_at`` > 0 makes
    its entries from that index on differ from the log of the same origin and size without it."""

    __test__ = False  # not a test class
    origin: str
    signer: Signer
    leaves: int = 64
    fork_at: int = 0
    tree: Tree = field(init=False)

    def __post_init__(self) -> None:
        entries = [
            f"{self.origin} entry {i}{' fork' if self.fork_at and i >= self.fork_at else ''}".encode()
            for i in range(self.leaves)
        ]
        self.tree = Tree([leaf_hash(e) for e in entries])

    @property
    def vkey(self) -> str:
        return self.signer.verifier().to_key()

    def root(self, size: int) -> bytes:
        return self.tree.root(size)

    def note(self, size: int, *signers: NoteSigner) -> str:
        text = Checkpoint(self.origin, size, self.root(size)).format()
        return sign_note(text, list(signers or [self.signer]))

    def body(self, old: int, size: int, *signers: NoteSigner) -> bytes:
        proof = self.tree.consistency_proof(old, size) if 0 < old <= size else []
        return add_checkpoint_body(old, proof, self.note(size, *signers))


@dataclass(frozen=True)
class Answer:
    status: int
    content_type: str
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")


def http(url: str, body: bytes | None = None, *, timeout: float = 10.0) -> Answer:
    """POST ``body`` (GET without one) and the answer, whatever its status."""
    request = urllib.request.Request(url, data=body, method="GET" if body is None else "POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as r:
            return Answer(r.status, r.headers.get("Content-Type", ""), r.read())
    except urllib.error.HTTPError as e:
        return Answer(e.code, e.headers.get("Content-Type", ""), e.read())


def keygen(data_dir: Path, name: str, alg: str = "ed25519") -> str:
    """`notar witness keygen`; its last line of output (the verifier key)."""
    out = subprocess.run(
        [NOTAR, "witness", "keygen", "--data-dir", str(data_dir), "--name", name, "--alg", alg],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    return out.splitlines()[-1]


@dataclass
class WitnessProcess:
    """`notar witness serve` on a free loopback port; ``start`` again after ``kill`` keeps the port."""

    data_dir: Path
    logs_file: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> WitnessProcess:
        self.starts += 1
        with open(self.data_dir.parent / f"witness-{self.port}-{self.starts}.log", "wb") as out:
            self.proc = subprocess.Popen(
                [NOTAR, "witness", "serve", "--data-dir", str(self.data_dir), "--listen",
                 f"127.0.0.1:{self.port}", "--logs", str(self.logs_file)],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        wait_ready(self.url, self.proc, timeout=60)
        return self

    def kill(self) -> None:
        """SIGKILL: no clean shutdown, as a crash or a power cut."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)

    def post(self, path: str, body: bytes) -> Answer:
        return http(self.url + path, body)
