"""Helpers for tests that run `notar serve` (or another server) as a real process on loopback."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from services.published.trust import trusted_keys

_HANDED: set[int] = set()


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now, and not one handed out before in this process: the
    kernel may give the same free port to two binds in a row, and two servers started one after
    the other (before the first binds) would then be given one port."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port not in _HANDED:
            _HANDED.add(port)
            return port


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


NOTAR = str(Path(sys.executable).with_name("notar"))


def notar_cli(*args: str, env: Mapping[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """The `notar` command run as a user runs it: a process, its output as text."""
    return subprocess.run([NOTAR, *args], env=dict(env), capture_output=True, text=True, timeout=timeout)


@dataclass
class NotarProcess:
    """A running `notar serve`: its URL, the environment the client commands use with it (URL,
    DATA_DIR, API_KEY of tenant `acme`), its published verifier keys and its data directory."""

    proc: subprocess.Popen[bytes]
    url: str
    env: dict[str, str]
    keys: list[str]
    data: Path

    def stop(self) -> None:
        stop_process(self.proc, timeout=60)


@contextmanager
def notar_serve(
    data: Path, origin: str, *, tenant: str | None = "acme", role: str = "all", **settings: str
) -> Iterator[NotarProcess]:
    """`notar serve --role ROLE` on a free loopback port with `data` as DATA_DIR, batches of 10 ms,
    anchors every second and `settings` (NAME=value, as NOTAR_NAME), a tenant made with `notar
    tenant add`; stopped (SIGTERM) on exit."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "NOTAR_DATA_DIR": str(data),
        "NOTAR_ORIGIN": origin,
        "NOTAR_LISTEN": f"127.0.0.1:{port}",
        "NOTAR_URL": url,
        "NOTAR_BATCH_MS": "10",
        "NOTAR_ANCHOR_INTERVAL_S": "1",
        **{f"NOTAR_{name}": value for name, value in settings.items()},
    }
    env.pop("NOTAR_API_KEY", None)
    proc = subprocess.Popen(
        [NOTAR, "serve", "--role", role], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_ready(url, proc)
        with urllib.request.urlopen(url + "/v1/keys", timeout=10) as r:
            keys = trusted_keys(json.loads(r.read()))
        if tenant is not None:
            added = notar_cli("tenant", "add", tenant, env=env)
            assert added.returncode == 0, added.stderr
            env["NOTAR_API_KEY"] = added.stdout.strip().splitlines()[-1]
        yield NotarProcess(proc, url, env, keys, data)
    finally:
        stop_process(proc, timeout=60)
