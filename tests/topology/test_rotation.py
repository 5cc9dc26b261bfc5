"""A key rotation as k8s/README.md ("Rotate keys") has it done in Kubernetes, on the loopback
topology: an anchor whose signing keys come from a Secret (LOG_KEY_FILE, CLOCK_KEY_FILE, read-only
copies), one ingest and one verify `notar serve` on SeaweedFS. The anchor is scaled to 0 (SIGTERM:
it gives its lease up, all it signed published); the operator runs `notar keys rotate` away from
the anchor's volume, with copies of the keys and the bucket's credentials; the Secret gets the new
keys and the anchor starts again. Then the verify pod's `/v1/keys` lists both periods, receipts
issued before and after verify under it with `notar verify --policy`, and the anchor refuses the
retired keys if the Secret was not replaced."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from merkle import Receipt
from services.common.index_key import create_index_key
from tests.seaweed import S3Target, free_ports
from tests.topology.processes import START_S, Pod, pod_env, run_notar, stop, wait_ready

ORIGIN = "rotation.notar.test/log"
WAIT_S = 60.0


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.cli", *args], env=env, capture_output=True, text=True, timeout=120
    )


def until(what: str, probe: Callable[[], Any], timeout: float = WAIT_S) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := probe()):
        assert time.monotonic() < deadline, f"not within {timeout:g} s: {what}"
        time.sleep(0.2)
    return value


def http(url: str, *, key: str | None = None, body: dict[str, Any] | None = None) -> Any:
    headers = {"Content-Type": "application/json"} if body is not None else {}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    data = None if body is None else json.dumps(body).encode()
    with urllib.request.urlopen(urllib.request.Request(url, data=data, headers=headers), timeout=30) as r:
        return json.loads(r.read())


def anchored(url: str, digest: str, key: str) -> dict[str, Any] | None:
    receipt: dict[str, Any] = http(f"{url}/v1/receipts/{digest}", key=key)
    return receipt if receipt["anchors"] else None


def install_secret(src: Path, secret: Path) -> None:
    """What the anchor's `install-keys` init container does with the Secret: 0400 copies."""
    for name in ("log.key", "clock.key"):
        target = secret / name
        if target.exists():
            target.chmod(0o600)
        shutil.copyfile(src / name, target)
        target.chmod(0o400)


@pytest.fixture
def cluster(s3_target: S3Target, tmp_path: Path) -> Iterator[tuple[dict[str, str], list[Pod], Path]]:
    base = pod_env(s3_target, f"rotation-{uuid.uuid4().hex[:12]}/", ORIGIN)
    create_index_key(tmp_path / "index.key")
    base["NOTAR_INDEX_KEY_FILE"] = str(tmp_path / "index.key")
    # the operator's keys, as `notar keygen` made them for the Secret (k8s/README.md, Deploy)
    made = cli("keygen", env={**base, "NOTAR_DATA_DIR": str(tmp_path / "operator")})
    assert made.returncode == 0, made.stderr
    secret = tmp_path / "secret"
    secret.mkdir()
    install_secret(tmp_path / "operator" / "keys", secret)
    ports = free_ports(3)
    pods: list[Pod] = []
    try:
        for role, port in zip(("anchor", "ingest", "verify"), ports, strict=True):
            (tmp_path / role).mkdir()
            env = {**base, "NOTAR_DATA_DIR": str(tmp_path / role), "NOTAR_LISTEN": f"127.0.0.1:{port}"}
            if role == "anchor":
                env["NOTAR_LOG_KEY_FILE"] = str(secret / "log.key")
                env["NOTAR_CLOCK_KEY_FILE"] = str(secret / "clock.key")
            else:
                env["NOTAR_ANCHOR_URL"] = f"http://127.0.0.1:{ports[0]}"
            log = tmp_path / f"{role}.log"
            process = run_notar("serve", "--role", role, env=env, log=log)
            pods.append(Pod(role, f"http://127.0.0.1:{port}", process, log))
            wait_ready(pods[-1], time.monotonic() + START_S)
        yield base, pods, tmp_path
    finally:
        stop(pods)


def test_rotation_in_kubernetes_steps_keeps_every_receipt_verifiable(
    cluster: tuple[dict[str, str], list[Pod], Path],
) -> None:
    base, pods, tmp = cluster
    anchor, ingest, verify = pods
    added = cli("tenant", "add", "acme", env={**base, "NOTAR_DATA_DIR": str(tmp)})
    assert added.returncode == 0, added.stderr
    key = added.stdout.strip().splitlines()[-1]

    def notarize() -> str:
        digest = f"sha256:{os.urandom(32).hex()}"
        http(ingest.url + "/v1/digests", key=key, body={"digests": [digest]})
        return digest

    before = notarize()

    # 1. kubectl scale statefulset/notar-anchor --replicas=0
    assert stop([anchor]) == {f"anchor {anchor.url}": 0}, anchor.tail()
    # 2. the operator rotates away from the anchor's volume: copies of the keys, the bucket
    operator = tmp / "operator" / "keys"
    rotated = cli(
        "keys", "rotate",
        env={**base, "NOTAR_DATA_DIR": str(tmp / "rotate"), "NOTAR_LOG_KEY_FILE": str(operator / "log.key"),
             "NOTAR_CLOCK_KEY_FILE": str(operator / "clock.key")},
    )  # fmt: skip
    assert rotated.returncode == 0, rotated.stdout + rotated.stderr
    assert "notar.key-rotation.v1" in rotated.stdout
    assert len(list(operator.glob("log.key.retired-*"))) == 1

    # a Secret left with the retired keys: the anchor refuses to start, naming the setting
    anchor_env = {
        **base,
        "NOTAR_DATA_DIR": str(tmp / "anchor"),
        "NOTAR_LISTEN": anchor.url.removeprefix("http://"),
        "NOTAR_LOG_KEY_FILE": str(tmp / "secret" / "log.key"),
        "NOTAR_CLOCK_KEY_FILE": str(tmp / "secret" / "clock.key"),
    }
    refused = run_notar("serve", "--role", "anchor", env=anchor_env, log=tmp / "anchor-refused.log")
    assert refused.wait(timeout=60) == 2
    assert "retired at tree size" in (tmp / "anchor-refused.log").read_text()

    # 3. the Secret gets the new keys; kubectl scale statefulset/notar-anchor --replicas=1
    install_secret(operator, tmp / "secret")
    anchor.process = run_notar("serve", "--role", "anchor", env=anchor_env, log=anchor.log)
    wait_ready(anchor, time.monotonic() + START_S)
    after = notarize()

    # verify pods read the new keys document within KEYS_TTL_S (30 s)
    def both_periods() -> dict[str, Any] | None:
        doc: dict[str, Any] = http(verify.url + "/v1/keys")
        return doc if len(doc["logs"]) == 2 else None

    doc = until("the verify pod serving both key periods", both_periods)
    assert [e["state"] for e in doc["logs"]] == ["retired", "active"]
    assert len(doc["rotations"]) == 1
    (tmp / "keys.json").write_text(json.dumps(doc))
    for name, digest in (("before", before), ("after", after)):
        got = until(f"the {name} receipt anchored", partial(anchored, verify.url, digest, key))
        path = tmp / f"{name}.receipt.json"
        path.write_text(json.dumps(got))
        done = cli("verify", str(path), "--policy", str(tmp / "keys.json"), env=base)
        assert done.returncode == 0, (name, done.stdout, done.stderr)
        assert "✓ log signature" in done.stdout
    # the receipt issued before was signed by the retired key within its period, the other after it
    handover = doc["logs"][1]["from_size"]
    first, second = (Receipt.from_json((tmp / f"{n}.receipt.json").read_bytes()) for n in ("before", "after"))
    assert first.index < handover <= second.index
