"""Helpers for tests that run `notar serve` (or another server) as a real process on loopback."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
import urllib.request
from contextlib import suppress


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(
    url: str, proc: subprocess.Popen[bytes] | subprocess.Popen[str], *, timeout: float = 60.0
) -> None:
    """Poll `url`/readyz until it answers 200; fail if the process exits or time runs out."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        assert proc.poll() is None, f"the server behind {url} exited during start-up"
        assert time.monotonic() < deadline, f"the server behind {url} was not ready in {timeout:g} s"
        time.sleep(0.1)


def stop_process(process: subprocess.Popen[bytes], *, timeout: float = 5.0) -> None:
    """SIGTERM, then SIGKILL if it has not exited within ``timeout`` seconds."""
    if process.poll() is None:
        with suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
