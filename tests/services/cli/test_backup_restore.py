"""The anchor's volume lost and restored from a backup, on real processes (docs/backups.md), with
the directory store and with SeaweedFS.

A `notar serve` notarizes a first set of digests with backups off; restarted with backups on, it
backs up its index at once (none is an interval old), then notarizes a second set and erases one
of the first; once everything is published it is killed (-9) and its RocksDB directory deleted.
A start on the empty index is refused, naming the restore; `notar backup restore` restores the
backup. Restarted, the server serves every receipt of the first set again (each verifies, with the
same index and salt), the erased one stays erased, and the second set, notarized after the backup
(the recovery point), is reported as lost with the backup named: the receipts the client kept of
it still verify, the log goes on consistently from where it was published, no index is given
twice."""

from __future__ import annotations

import datetime
import json
import os
import re
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from merkle import verify_consistency, verify_receipt
from merkle.checkpoint import parse_checkpoint
from merkle.note import parse_note
from services.sdk import trusted_keys
from tests.seaweed import S3Target
from tests.services.cli.test_cli import NOTAR, run
from tests.serving import free_port, wait_ready

ORIGIN = "backup.notar.test/log"
WAIT_S = 60.0


def call(url: str, method: str = "GET", body: Any = None, key: str = "") -> tuple[int, bytes]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    data = None if body is None else json.dumps(body).encode()
    if data is not None:
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=60) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


class Serve:
    """One `notar serve` process on `env`."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.url = env["NOTAR_URL"]
        with open(log, "ab") as out:
            self.proc = subprocess.Popen([NOTAR, "serve"], env=env, stdout=out, stderr=out)
        wait_ready(self.url, self.proc, timeout=WAIT_S)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        assert self.proc.wait(timeout=60) == 0

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=30)


@pytest.fixture(params=["fs", "s3"])
def env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, str]]:
    port = free_port()
    base = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("NOTAR_", "AWS_", "OTEL_"))},
        "NOTAR_DATA_DIR": str(tmp_path / "data"),
        "NOTAR_ORIGIN": ORIGIN,
        "NOTAR_BATCH_MS": "10",
        "NOTAR_LISTEN": f"127.0.0.1:{port}",
        "NOTAR_URL": f"http://127.0.0.1:{port}",
    }
    if request.param == "s3":
        target: S3Target = request.getfixturevalue("s3_target")
        base |= {
            "NOTAR_STORE": "s3",
            "NOTAR_S3_ENDPOINT": target.endpoint,
            "NOTAR_S3_BUCKET": target.bucket,
            "NOTAR_S3_REGION": target.region,
            "NOTAR_S3_PREFIX": f"backup-{uuid.uuid4().hex[:12]}/",
            "AWS_ACCESS_KEY_ID": target.access_key,
            "AWS_SECRET_ACCESS_KEY": target.secret_key,
        }
    yield base


def notarize(url: str, key: str, count: int) -> dict[str, dict[str, Any]]:
    digests = [f"sha256:{os.urandom(32).hex()}" for _ in range(count)]
    status, body = call(f"{url}/v1/digests", "POST", {"digests": digests}, key)
    assert status == 200, body
    return dict(zip(digests, json.loads(body)["receipts"], strict=True))


def published_size(url: str) -> int:
    status, body = call(f"{url}/log/checkpoint")
    return parse_checkpoint(parse_note(body.decode()).text).size if status == 200 else 0


def until(what: str, probe: Any) -> Any:
    deadline = time.monotonic() + WAIT_S
    while not (found := probe()):
        assert time.monotonic() < deadline, f"{what}: not within {WAIT_S:g} s"
        time.sleep(0.2)
    return found


def test_a_lost_index_is_restored_and_serves_every_receipt_up_to_the_backup(
    env: dict[str, str], tmp_path: Path
) -> None:
    log = tmp_path / "serve.log"
    server = Serve({**env, "NOTAR_BACKUP_INTERVAL_S": "0"}, log)
    try:
        key = run("tenant", "add", "acme", env=env, check=True).stdout.strip().splitlines()[-1]
        first = notarize(server.url, key, 20)
    finally:
        server.stop()
    assert "no complete backup" in run("backup", "list", env=env, check=True).stdout

    server = Serve({**env, "NOTAR_BACKUP_INTERVAL_S": "3600"}, log)
    try:
        listed = until("the backup taken at start", lambda: _backups(env))
        (line,) = listed
        assert " 20 entries " in line  # the first set, and nothing else yet
        second = notarize(server.url, key, 20)
        erased = next(iter(first))
        assert call(f"{server.url}/v1/receipts/{erased}", "DELETE", key=key)[0] == 204
        size = max(r["log"]["tree_size"] for r in second.values())
        until("everything published", lambda: published_size(server.url) >= size)
        keys = trusted_keys(json.loads(call(f"{server.url}/v1/keys")[1]))
    finally:
        server.kill()  # the volume is lost, with the index on it
    shutil.rmtree(Path(env["NOTAR_DATA_DIR"]) / "index")

    refused = subprocess.run([NOTAR, "serve"], env=env, capture_output=True, text=True, timeout=120)
    assert refused.returncode == 1 and "holds the lease" in refused.stderr, refused.stderr
    _wait_out_the_lease(refused.stderr)  # the killed anchor's: a new holder waits for it to end
    refused = subprocess.run([NOTAR, "serve"], env=env, capture_output=True, text=True, timeout=120)
    assert refused.returncode == 1 and "notar backup restore" in refused.stderr, refused.stderr
    restored = run("backup", "restore", env=env, check=True).stdout
    assert "restored backup" in restored and " 20 entries " in restored
    again = run("backup", "restore", env=env)
    assert again.returncode == 2 and "not empty" in again.stderr

    server = Serve(env, log)
    try:
        for digest, kept in first.items():
            status, body = call(f"{server.url}/v1/receipts/{digest}", key=key)
            if digest == erased:
                assert status == 404, body  # erased after the backup: erased again
                continue
            assert status == 200, body
            receipt = json.loads(body)
            assert (receipt["log"]["index"], receipt["salt"]) == (kept["log"]["index"], kept["salt"])
            assert verify_receipt(receipt, keys=keys, digest=digest).valid
        backup_id = line.split()[0]
        for digest, kept in second.items():
            status, body = call(f"{server.url}/v1/receipts/{digest}", key=key)
            assert status == 404, body
            detail = json.loads(body)["detail"]
            assert "lost" in detail and backup_id in detail and "entries 20 to 39" in detail, detail
            assert verify_receipt(kept, keys=keys, digest=digest).valid  # what the client kept
        third = notarize(server.url, key, 5)
        assert sorted(r["log"]["index"] for r in third.values()) == list(range(40, 45))  # none given twice
        for digest, receipt in third.items():
            assert verify_receipt(receipt, keys=keys, digest=digest).valid
        _assert_consistent(server.url, second, third)
    finally:
        server.stop()


def _wait_out_the_lease(message: str) -> None:
    """Sleep until the lease time named in `message` ("… until 2026-01-02T03:04:05Z …") is past."""
    until = re.search(r"until (\S+Z)", message)
    assert until is not None, message
    end = datetime.datetime.fromisoformat(until.group(1).replace("Z", "+00:00")).timestamp()
    wait = end - time.time() + 1
    assert wait < 40, message  # the lease is 30 s
    time.sleep(max(0.0, wait))


def _backups(env: dict[str, str]) -> list[str]:
    out = run("backup", "list", env=env, check=True).stdout.splitlines()
    return [line for line in out if " entries " in line]


def _assert_consistent(url: str, before: dict[str, dict[str, Any]], after: dict[str, dict[str, Any]]) -> None:
    """The tree the lost index's receipts name is a prefix of the tree after the restore."""
    old = max(before.values(), key=lambda r: r["log"]["tree_size"])
    new = max(after.values(), key=lambda r: r["log"]["tree_size"])
    old_cp = parse_checkpoint(parse_note(old["checkpoint"]).text)
    new_cp = parse_checkpoint(parse_note(new["checkpoint"]).text)
    status, body = call(f"{url}/v1/proofs/consistency?from={old_cp.size}&to={new_cp.size}")
    assert status == 200, body
    proof = [bytes.fromhex(p) for p in json.loads(body)["proof"]]
    assert verify_consistency(old_cp.size, new_cp.size, proof, old_cp.root, new_cp.root)
