"""`notar serve` as a real process: what it checks before it says "listening", how it refuses
(one line, named), the NOTAR_* typo warning, the summary at exit, and SIGTERM during an upload
(503 with Retry-After at once, exit within the drain time, not after the read timeout)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.services.cli.test_cli import NOTAR, run
from tests.serving import free_port, wait_ready

DRAIN_S_DEFAULT = 10  # SPEC §8 DRAIN_S: what the exit-time test holds the server to


def _env(data: Path, port: int, **settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOTAR_")}
    return {
        **env,
        "NOTAR_DATA_DIR": str(data),
        "NOTAR_LISTEN": f"127.0.0.1:{port}",
        "NOTAR_BATCH_MS": "10",
        **{f"NOTAR_{k}": v for k, v in settings.items()},
    }


def _refused(r: subprocess.CompletedProcess[str]) -> str:
    """The one line a refused start-up printed: never "listening", never more than one line."""
    assert r.returncode in (1, 2), r.stdout + r.stderr
    assert "listening" not in r.stdout, r.stdout
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("notar: "), r.stderr
    return r.stderr


def test_start_up_refusals_come_before_listening_one_line_each(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = _refused(run("serve", env=_env(tmp_path / "a", port), timeout=60))
        assert f"cannot listen on 127.0.0.1:{port}: address already in use" in line

    port = free_port()
    bad_key = tmp_path / "log.key"
    bad_key.write_text("not a key\n")
    bad_key.chmod(0o600)
    line = _refused(run("serve", env=_env(tmp_path / "b", port, LOG_KEY_FILE=str(bad_key)), timeout=60))
    assert "LOG_KEY_FILE" in line

    with socket.socket() as closed:  # a port nothing listens on: the store cannot answer
        closed.bind(("127.0.0.1", 0))
        dead = closed.getsockname()[1]
    s3 = {"STORE": "s3", "S3_BUCKET": "notar-test", "S3_ENDPOINT": f"http://127.0.0.1:{dead}"}
    for role in ("all", "verify"):
        env = {**_env(tmp_path / "c", port, **s3), "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "y"}
        r = run("serve", "--role", role, env=env, timeout=120)
        line = _refused(r)
        assert "the object store does not answer" in line and "Unclosed" not in r.stderr, role


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], str, dict[str, str]]]:
    port = free_port()
    # a typo: without the warning, the server silently runs on the default store
    env = _env(tmp_path, port, READ_TIMEOUT_S="60", STOR="s3")
    proc = subprocess.Popen(
        [NOTAR, "serve"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, proc, timeout=60)
        yield proc, url, env
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=30)


def test_sigterm_mid_upload_answers_503_and_exits_within_the_drain_time(
    server: tuple[subprocess.Popen[str], str, dict[str, str]],
) -> None:
    proc, url, env = server
    key = run("tenant", "add", "acme", env=env, check=True).stdout.strip().splitlines()[-1]
    port = int(url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=30) as upload:
        head = (
            f"PUT /v1/documents HTTP/1.1\r\nHost: notar\r\nAuthorization: Bearer {key}\r\n"
            "Content-Type: application/octet-stream\r\nContent-Length: 1000000000\r\n\r\n"
        )
        upload.sendall(head.encode() + b"x" * 65536)  # and no more: the upload is in flight
        time.sleep(1)
        proc.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        answer = b""
        while b"\r\n\r\n" not in answer and (data := upload.recv(4096)):
            answer += data
        status, _, rest = answer.partition(b"\r\n")
        headers = rest.decode().lower()
        assert status.startswith(b"HTTP/1.1 503 "), answer
        assert "retry-after: " in headers and "connection: close" in headers, answer
        proc.wait(timeout=DRAIN_S_DEFAULT + 20)  # killed by the fixture otherwise
        exited = time.monotonic() - signalled
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    # within DRAIN_S, not after READ_TIMEOUT_S (60 s here) as before
    assert exited < DRAIN_S_DEFAULT, (exited, err)

    assert "unknown setting NOTAR_STOR (did you mean NOTAR_STORE?)" in err
    last = out.strip().splitlines()[-1]
    assert last.startswith("notar all stopped after ") and "requests served" in last, out


def test_drain_s_bounds_how_long_a_request_in_flight_holds_the_exit(tmp_path: Path) -> None:
    """A download whose client stopped reading is still in flight at SIGTERM: the server gives it
    DRAIN_S (2 s here), then closes it and exits, instead of the default 10 s."""
    port = free_port()
    env = _env(tmp_path, port, DRAIN_S="2")
    proc = subprocess.Popen(
        [NOTAR, "serve"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, proc, timeout=60)
        key = run("tenant", "add", "acme", env=env, check=True).stdout.strip().splitlines()[-1]
        document = tmp_path / "big.bin"
        document.write_bytes(os.urandom(64 << 20))  # more than the socket buffers hold
        run(
            "notarize",
            str(document),
            "--upload",
            "--quiet",
            env={**env, "NOTAR_URL": url, "NOTAR_API_KEY": key},
            check=True,
        )
        digest = json.loads((tmp_path / "big.bin.receipt.json").read_text())["digest"]
        with socket.create_connection(("127.0.0.1", port), timeout=30) as download:
            download.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
            head = f"GET /v1/documents/{digest} HTTP/1.1\r\nHost: n\r\nAuthorization: Bearer {key}\r\n\r\n"
            download.sendall(head.encode())
            assert download.recv(4096).startswith(b"HTTP/1.1 200 ")  # and no more: the handler blocks
            time.sleep(1)
            proc.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
            proc.wait(timeout=DRAIN_S_DEFAULT + 20)
            exited = time.monotonic() - signalled
        assert proc.returncode == 0
        assert 2 <= exited < DRAIN_S_DEFAULT, exited  # it waited DRAIN_S for the download, no longer
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=30)
