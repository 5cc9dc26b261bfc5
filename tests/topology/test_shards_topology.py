"""SPEC §10 in split roles, minus Kubernetes: two `notar serve --role anchor` processes with
SHARDS=2, each claiming its shard in the shard table by ordinal (one by SHARD_ORDINAL, one by a
StatefulSet-style HOSTNAME), and an ingest and a verify pod that find both shards through the
table, all on one SeaweedFS bucket; at the end, shard 1 frozen and read through shard 0's anchor, then
through shard 2's once shard 0's anchor stopped."""

from __future__ import annotations

import asyncio
import json
import signal
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from merkle import verify_receipt
from merkle.checkpoint import parse_checkpoint
from merkle.introduction import open_introduction
from merkle.note import Verifier, parse_note
from services.common.index_key import create_index_key
from services.internal.directory import REFRESH_S
from services.published.shards import load_table
from services.published.trust import trusted_keys
from storage.s3 import S3Store
from tests.seaweed import S3Target, free_ports
from tests.topology.processes import START_S, Pod, pod_env, run_notar, start_pod, stop, wait_ready

ORIGIN = "shards.topology.test/log"
pytestmark = pytest.mark.slow  # a cluster of real processes
ORIGINS = [ORIGIN, f"{ORIGIN}/1"]


@dataclass
class Sharded:
    pods: list[Pod]  # the fixture's own list: a test that restarts a pod puts the new one in it
    api_key: str
    target: S3Target
    prefix: str
    env: dict[str, str]  # what every pod got (the anchors their ordinal besides)
    tmp: Path

    @property
    def anchors(self) -> list[Pod]:
        return self.pods[:2]

    @property
    def ingest(self) -> Pod:
        return self.pods[2]

    @property
    def verify(self) -> Pod:
        return self.pods[3]


@pytest.fixture(scope="module")
def sharded(s3_target: S3Target, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sharded]:
    tmp = tmp_path_factory.mktemp("shards-topology")
    prefix = f"shards-{uuid.uuid4().hex[:12]}/"
    base = pod_env(s3_target, prefix, ORIGIN) | {"NOTAR_SHARDS": "2"}
    create_index_key(tmp / "index.key")
    base["NOTAR_INDEX_KEY_FILE"] = str(tmp / "index.key")
    ports = free_ports(4)
    pods: list[Pod] = []
    try:
        # the first anchor's ordinal is its setting, the second's its StatefulSet-style pod name
        ordinals = [{"NOTAR_SHARD_ORDINAL": "0"}, {"HOSTNAME": "notar-anchor-1"}, {}, {}]
        roles = ("anchor", "anchor", "ingest", "verify")
        for role, port, ordinal in zip(roles, ports, ordinals, strict=True):
            pods.append(start_pod(role, port, {**base, **ordinal}, tmp))
            if role == "anchor":
                wait_ready(pods[-1], time.monotonic() + START_S)
        for p in pods:
            wait_ready(p, time.monotonic() + START_S)
        log = tmp / "tenant.log"
        add = run_notar("tenant", "add", "acme", env={**base, "NOTAR_DATA_DIR": str(tmp)}, log=log)
        assert add.wait(timeout=60) == 0, log.read_text()
        key = log.read_text().strip().splitlines()[-1]
        yield Sharded(pods, key, s3_target, prefix, base, tmp)
    finally:
        codes = stop(pods)
    assert all(code == 0 for code in codes.values()), f"not a clean stop: {codes}\n" + "\n".join(
        p.tail() for p in pods
    )


def call(
    pod: Pod, path: str, key: str | None, *, body: Any = None, method: str | None = None
) -> tuple[int, bytes]:
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = "Bearer " + key
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(pod.url + path, data=data, headers=headers, method=method)
    for _ in range(50):  # 503 + Retry-After: a verify pod may see a checkpoint a moment late
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            if e.code != 503:
                return e.code, e.read()
            time.sleep(0.2)
    raise AssertionError(f"{path}: still 503")


def test_each_anchor_claims_its_shard_and_advertises_its_url(sharded: Sharded) -> None:
    async def table() -> list[tuple[int, str, str, int | None, str | None]]:
        s3 = await S3Store.from_config(sharded.target.config(prefix=sharded.prefix))
        try:
            return [(s.id, s.origin, s.state, s.ordinal, s.url) for s in await load_table(s3)]
        finally:
            await s3.close()

    assert asyncio.run(table()) == [
        (0, ORIGINS[0], "active", 0, sharded.anchors[0].url),
        (1, ORIGINS[1], "active", 1, sharded.anchors[1].url),
    ]


def test_ingest_spreads_and_verify_reads_every_shard(sharded: Sharded) -> None:
    status, body = call(sharded.verify, "/v1/keys", None)
    assert status == 200
    document = json.loads(body)
    assert [log["origin"] for log in document["logs"]] == ORIGINS
    keys = trusted_keys(document)
    deadline = time.monotonic() + 30
    while not document.get("introductions") and time.monotonic() < deadline:  # shard 0's next round
        time.sleep(0.5)
        document = json.loads(call(sharded.verify, "/v1/keys", None)[1])
    first = Verifier.from_key(document["logs"][0]["log"])
    assert open_introduction(document["introductions"][0], first).log.to_key() == document["logs"][1]["log"]
    digests = ["sha256:" + f"topo{n:04d}".encode().hex().ljust(64, "0") for n in range(1000)]
    status, body = call(sharded.ingest, "/v1/digests", sharded.api_key, body={"digests": digests})
    assert status == 200, body
    receipts = json.loads(body)["receipts"]
    assert [r["digest"] for r in receipts] == digests
    assert {r["log"]["origin"] for r in receipts} == set(ORIGINS)
    for r in receipts[::7]:
        assert verify_receipt(r, keys=keys, digest=r["digest"]).valid
    one = next(r for r in receipts if r["log"]["origin"] == ORIGINS[1])
    status, body = call(sharded.verify, f"/v1/receipts/{one['digest']}", sharded.api_key)
    assert status == 200, body
    found = json.loads(body)
    assert (found["log"]["origin"], found["log"]["index"]) == (ORIGINS[1], one["log"]["index"])
    status, note = call(sharded.verify, "/log/1/checkpoint", None)
    assert status == 200 and parse_checkpoint(parse_note(note.decode()).text).origin == ORIGINS[1]
    assert call(sharded.verify, f"/v1/receipts/{one['digest']}", sharded.api_key, method="DELETE")[0] == 204
    assert call(sharded.verify, f"/v1/receipts/{one['digest']}", sharded.api_key)[0] == 404


def test_a_look_up_answers_from_the_shards_that_answer_while_one_is_down(sharded: Sharded) -> None:
    """kill -9 of shard 1's anchor: a digest found in shard 0 is answered (the header names the
    shard that did not answer: an earlier notarization may be there), a digest only shard 1 holds
    is a 503 with Retry-After, not a 404; once the anchor is back, both are found as before."""
    digests = ["sha256:" + f"down{n:04d}".encode().hex().ljust(64, "0") for n in range(1000)]
    status, body = call(sharded.ingest, "/v1/digests", sharded.api_key, body={"digests": digests})
    assert status == 200, body
    receipts = json.loads(body)["receipts"]
    in_zero = next(r for r in receipts if r["log"]["origin"] == ORIGINS[0])
    in_one = next(r for r in receipts if r["log"]["origin"] == ORIGINS[1])
    old = sharded.pods[1]
    old.process.kill()
    old.process.wait(timeout=30)
    try:
        req = urllib.request.Request(
            f"{sharded.verify.url}/v1/receipts/{in_zero['digest']}",
            headers={"Authorization": "Bearer " + sharded.api_key},
        )
        with urllib.request.urlopen(req, timeout=30) as r:
            assert r.headers["Notar-Shards-Unavailable"] == ORIGINS[1]
            assert json.loads(r.read())["log"]["index"] == in_zero["log"]["index"]
        req = urllib.request.Request(
            f"{sharded.verify.url}/v1/receipts/{in_one['digest']}",
            headers={"Authorization": "Bearer " + sharded.api_key},
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(req, timeout=30)
        assert refused.value.code == 503 and 1 <= int(refused.value.headers["Retry-After"]) <= 5
    finally:
        env = {**sharded.env, "HOSTNAME": "notar-anchor-1", "NOTAR_LISTEN": old.url.removeprefix("http://")}
        env["NOTAR_DATA_DIR"] = str(old.log.with_suffix(""))
        again = Pod("anchor", old.url, run_notar("serve", "--role", "anchor", env=env, log=old.log), old.log)
        sharded.pods[1] = again
        wait_ready(again, time.monotonic() + START_S)
    for r in (in_zero, in_one):
        status, body = call(sharded.verify, f"/v1/receipts/{r['digest']}", sharded.api_key)
        assert status == 200 and json.loads(body)["log"]["index"] == r["log"]["index"], body


def test_a_frozen_shard_is_read_through_an_active_shards_anchor(sharded: Sharded) -> None:
    """Last: it leaves shard 1 frozen. Once frozen, shard 1's anchor drops its RocksDB; stopped, its
    look-ups and erasures go to shard 0's anchor with shard 1's origin (verify holds no index key)."""
    digests = ["sha256:" + f"frozen{n:04d}".encode().hex().ljust(64, "0") for n in range(1000)]
    status, body = call(sharded.ingest, "/v1/digests", sharded.api_key, body={"digests": digests})
    assert status == 200, body
    ones = [r for r in json.loads(body)["receipts"] if r["log"]["origin"] == ORIGINS[1]]
    assert len(ones) > 2
    log = sharded.tmp / "freeze.log"
    env = {**sharded.env, "NOTAR_DATA_DIR": str(sharded.tmp)}
    assert run_notar("shard", "freeze", "1", env=env, log=log).wait(timeout=60) == 0, log.read_text()

    async def states() -> list[str]:
        s3 = await S3Store.from_config(sharded.target.config(prefix=sharded.prefix))
        try:
            return [s.state for s in await load_table(s3)]
        finally:
            await s3.close()

    data_dir = sharded.tmp / f"anchor-{sharded.anchors[1].url.rsplit(':', 1)[1]}"
    index = data_dir / "shards" / "1" / "index"
    assert index.is_dir()
    deadline = time.monotonic() + 90
    while asyncio.run(states()) != ["active", "frozen"] or index.exists():
        assert time.monotonic() < deadline, sharded.anchors[1].tail()
        time.sleep(0.5)
    sharded.anchors[1].process.send_signal(signal.SIGTERM)
    assert sharded.anchors[1].process.wait(timeout=60) == 0
    time.sleep(REFRESH_S + 0.5)  # the verify pod reads the table again

    def place(r: dict[str, Any]) -> tuple[str, int, str]:
        return r["log"]["origin"], r["log"]["index"], r["salt"]

    for r in ones[:2]:
        status, found = call(sharded.verify, f"/v1/receipts/{r['digest']}", sharded.api_key)
        assert status == 200, found
        assert place(json.loads(found)) == place(r)
    status, page = call(sharded.verify, f"/v1/receipts/{ones[0]['digest']}?all=true", sharded.api_key)
    assert status == 200 and [place(r) for r in json.loads(page)["receipts"]] == [place(ones[0])]
    gone = ones[0]["digest"]
    assert call(sharded.verify, f"/v1/receipts/{gone}", sharded.api_key, method="DELETE")[0] == 204
    assert call(sharded.verify, f"/v1/receipts/{gone}", sharded.api_key)[0] == 404
    status, found = call(sharded.verify, f"/v1/receipts/{ones[1]['digest']}", sharded.api_key)
    assert status == 200 and place(json.loads(found)) == place(ones[1])

    # the pod of ordinal 1 starts again on its volume: it claims a new shard, in a fresh directory
    old = sharded.pods[1]
    env = {**sharded.env, "HOSTNAME": "notar-anchor-1", "NOTAR_LISTEN": old.url.removeprefix("http://")}
    env["NOTAR_DATA_DIR"] = str(data_dir)
    again = Pod("anchor", old.url, run_notar("serve", "--role", "anchor", env=env, log=old.log), old.log)
    sharded.pods[1] = again
    wait_ready(again, time.monotonic() + START_S)
    assert (data_dir / "shards" / "2" / "keys").is_dir() and not index.exists()
    time.sleep(REFRESH_S + 0.5)  # the ingest pod reads the table again
    fresh = ["sha256:" + f"after{n:04d}".encode().hex().ljust(64, "0") for n in range(1000)]
    status, body = call(sharded.ingest, "/v1/digests", sharded.api_key, body={"digests": fresh})
    assert status == 200, body
    assert {r["log"]["origin"] for r in json.loads(body)["receipts"]} == {ORIGINS[0], f"{ORIGIN}/2"}
    assert asyncio.run(states()) == ["active", "frozen", "active"]
    status, found = call(sharded.verify, f"/v1/receipts/{ones[1]['digest']}", sharded.api_key)
    assert status == 200 and place(json.loads(found)) == place(ones[1])  # the frozen shard, as before

    # shard 0's anchor stops: the frozen shard is read through the next active shard's, shard 2's
    sharded.anchors[0].process.send_signal(signal.SIGTERM)
    assert sharded.anchors[0].process.wait(timeout=60) == 0
    status, found = call(sharded.verify, f"/v1/receipts/{ones[1]['digest']}", sharded.api_key)
    assert status == 200 and place(json.loads(found)) == place(ones[1]), found
