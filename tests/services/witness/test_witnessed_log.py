"""A running `notar serve` with two `notar witness serve` as its WITNESSES (real processes, loopback):
both cosign and upgraded receipts meet the published policy; one witness down delays no receipt
and the quorum is met once it is back with its state; a key rotation, after which old and new
receipts verify and one signed by the retired key beyond its period does not; a forked checkpoint
(same size, another root, signed with the log's key by the test) refused by the witness, and a
witness that holds the fork reported as a fork by the anchor. The tests run in this order on one
deployment (the last one leaves a witness forked for good)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from merkle import Checkpoint, Receipt, Status, Tree, decode_bundle, leaf_hash, verify_receipt
from merkle.checkpoint import parse_checkpoint, sign_checkpoint
from merkle.cosignature import CosignatureSigner
from merkle.note import Signer, parse_note, sign_note
from merkle.tiles import TILE_WIDTH, tile_path
from merkle.witness import add_checkpoint_body, checkpoint_path
from services.published.trust import document_trust
from tests.services.witness.harness import NOTAR, WitnessProcess, http, keygen
from tests.serving import free_port, stop_process, wait_ready

ORIGIN = "witnessed.notar.test/log"
WAIT_S = 90.0


@dataclass
class Deployment:
    tmp: Path
    env: dict[str, str]
    url: str
    witnesses: list[WitnessProcess]
    wkeys: list[str]
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0
    api_key: str = ""
    logs: list[Path] = field(default_factory=list)

    @property
    def data(self) -> Path:
        return Path(self.env["NOTAR_DATA_DIR"])

    def start(self) -> None:
        self.starts += 1
        log = self.tmp / f"serve-{self.starts}.log"
        self.logs.append(log)
        with open(log, "wb") as out:
            self.proc = subprocess.Popen([NOTAR, "serve"], env=self.env, stdout=out, stderr=subprocess.STDOUT)
        wait_ready(self.url, self.proc, timeout=60)

    def stop(self) -> None:
        assert self.proc is not None
        stop_process(self.proc, timeout=60)
        assert self.proc.returncode == 0, self.log_text()

    def log_text(self) -> str:
        return "".join(p.read_text(errors="replace") for p in self.logs)

    def get(self, path: str) -> bytes:
        with urllib.request.urlopen(self.url + path, timeout=30) as r:
            data: bytes = r.read()
            return data

    def keys(self) -> dict[str, Any]:
        doc: dict[str, Any] = json.loads(self.get("/v1/keys"))
        return doc

    def notarize(self, digests: list[str]) -> list[Receipt]:
        request = urllib.request.Request(
            self.url + "/v1/digests",
            data=json.dumps({"digests": digests}).encode(),
            headers={"Authorization": f"Bearer {self.api_key}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as r:
            return [Receipt.from_obj(x) for x in json.loads(r.read())["receipts"]]

    def receipt(self, digest: str) -> Receipt:
        request = urllib.request.Request(
            self.url + "/v1/receipts/" + digest, headers={"Authorization": f"Bearer {self.api_key}"}
        )
        with urllib.request.urlopen(request, timeout=30) as r:
            return Receipt.from_json(r.read())

    def readyz(self) -> str:
        try:
            return self.get("/readyz").decode()
        except urllib.error.HTTPError as e:
            return str(e.read().decode())

    def metric(self, name: str, witness: int) -> float:
        label = f'{name}{{witness="{self.wkeys[witness].split("+")[0]}"}} '
        for line in self.get("/metrics").decode().splitlines():
            if line.startswith(label):
                return float(line.split()[-1])
        raise AssertionError(f"{label} not in /metrics")


def notar(*args: str, env: dict[str, str], ok: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([NOTAR, *args], env=env, capture_output=True, text=True, timeout=120)
    if ok:
        assert done.returncode == 0, done.stdout + done.stderr
    return done


def until(what: str, probe: Callable[[], Any], timeout: float = WAIT_S) -> Any:
    """The first truthy value of ``probe()``, polled; fails naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        assert time.monotonic() < deadline, f"not within {timeout:g} s: {what}"
        time.sleep(0.2)


def digest() -> str:
    return f"sha256:{os.urandom(32).hex()}"


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    tmp = tmp_path_factory.mktemp("witnessed")
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("NOTAR_")},
        "NOTAR_DATA_DIR": str(tmp / "data"),
        "NOTAR_ORIGIN": ORIGIN,
        "NOTAR_LISTEN": f"127.0.0.1:{port}",
        "NOTAR_URL": f"http://127.0.0.1:{port}",
        "NOTAR_BATCH_MS": "20",
        "NOTAR_ANCHOR_INTERVAL_S": "1",
        "NOTAR_WITNESS_INTERVAL_S": "1",
    }
    log_key = notar("keygen", env=env).stdout.splitlines()[-2].split()[-1]
    logs_file = tmp / "logs.txt"
    logs_file.write_text(log_key + "\n")
    wkeys = [keygen(tmp / f"w{i}", f"witness.notar.test/w{i}") for i in (1, 2)]
    witnesses = [WitnessProcess(tmp / f"w{i}", logs_file).start() for i in (1, 2)]
    env["NOTAR_WITNESSES"] = ",".join(f"{k}@{w.url}" for k, w in zip(wkeys, witnesses, strict=True))
    env["NOTAR_WITNESS_QUORUM"] = "2"
    d = Deployment(tmp, env, f"http://127.0.0.1:{port}", witnesses, wkeys)
    try:
        d.start()
        d.api_key = notar("tenant", "add", "court", env=env).stdout.strip().splitlines()[-1]
        yield d
    finally:
        if d.proc is not None and d.proc.poll() is None:
            d.proc.send_signal(signal.SIGTERM)
            d.proc.wait(timeout=60)
        for w in witnesses:
            w.stop()


def witnessed(d: Deployment, r: Receipt, *, by: int = 2) -> Receipt | None:
    """The receipt of ``r``'s digest as the server upgrades it, once anchored and cosigned by the
    policy's quorum (``by`` = 1: once cosigned by at least one witness), else None."""
    got = d.receipt(str(r.digest))
    result = verify_receipt(got, keys=document_trust(d.keys()))
    check = result.check("witnesses")
    assert check is not None
    if not got.anchors:
        return None
    if by == 2:
        return got if check.status is Status.OK else None
    return got if "w1" in check.detail or "w2" in check.detail else None


def test_two_witnesses_cosign_and_upgraded_receipts_meet_the_published_policy(deployment: Deployment) -> None:
    d = deployment
    first = d.notarize([digest() for _ in range(20)])
    trust = document_trust(d.keys())
    fresh = verify_receipt(first[0], keys=trust).check("witnesses")
    assert fresh is not None and fresh.status is Status.FAILED and "not met" in fresh.detail
    assert "witness.notar.test/w1" in d.keys()["policy"] and d.keys()["witnesses"] == d.wkeys
    up = until(
        "a receipt upgraded to an anchored checkpoint both witnesses cosigned", lambda: witnessed(d, first[3])
    )
    result = verify_receipt(up, keys=document_trust(d.keys()))
    assert result.valid, result.failed
    assert [a.type for a in up.anchors] == ["local"]
    signers = {s.name for s in parse_note(up.checkpoint).signatures}
    assert {"witness.notar.test/w1", "witness.notar.test/w2", ORIGIN, ORIGIN + "/clock"} <= signers
    # notar verify --policy with the saved /v1/keys document: the same verdict
    (d.tmp / "keys.json").write_bytes(d.get("/v1/keys"))
    (d.tmp / "up.receipt.json").write_bytes(up.to_json())
    out = notar(
        "verify", str(d.tmp / "up.receipt.json"), "--policy", str(d.tmp / "keys.json"), env=d.env
    ).stdout
    assert "✓ witnesses" in out and "quorum quorum is met" in out
    for w in (0, 1):
        assert d.metric("notar_witness_cosigned_tree_size", w) >= up.tree_size
        assert d.metric("notar_witness_consecutive_failures", w) == 0
    assert d.readyz().count(": ok; cosigned tree size") == 2


def test_a_witness_down_delays_no_receipt_and_the_quorum_is_met_once_it_is_back(
    deployment: Deployment,
) -> None:
    d = deployment
    w2 = d.witnesses[1]
    origin_path = checkpoint_path(ORIGIN)
    held = parse_checkpoint(parse_note(http(w2.url + origin_path).text).text).size
    w2.kill()
    receipts = [d.notarize([digest() for _ in range(10)])[0] for _ in range(5)]  # all answered
    assert len({r.tree_size for r in receipts}) == 5
    until("the anchor reports w2 failing", lambda: "w2 (" in d.readyz() and "failing" in d.readyz())
    assert d.metric("notar_witness_consecutive_failures", 1) >= 1
    assert "ready" in d.readyz().splitlines()[0], "a witness down leaves the anchor ready"
    one = until("an upgrade cosigned by w1", lambda: witnessed(d, receipts[-1], by=1))
    check = verify_receipt(one, keys=document_trust(d.keys())).check("witnesses")
    assert check is not None and check.status is Status.FAILED and "quorum quorum is not met" in check.detail
    w2.start()  # same directory and port: the state it had
    again = parse_checkpoint(parse_note(http(w2.url + origin_path).text).text).size
    assert again >= held, f"w2 held {held} before kill -9 and {again} after its restart"
    both = until("the quorum met once w2 is back", lambda: witnessed(d, receipts[-1]))
    assert verify_receipt(both, keys=document_trust(d.keys())).valid
    until("w2 healthy again", lambda: d.metric("notar_witness_consecutive_failures", 1) == 0)


def test_rotation_then_old_and_new_receipts_verify_and_a_key_outside_its_period_fails(
    deployment: Deployment,
) -> None:
    d = deployment
    before = d.notarize([digest()])[0]
    old = until("a witnessed receipt", lambda: witnessed(d, before))
    d.stop()
    rotated = notar("keys", "rotate", env=d.env).stdout
    assert "notar.key-rotation.v1" in rotated
    d.start()
    doc = d.keys()
    assert [(e["state"], e["until_size"] is None) for e in doc["logs"]] == [
        ("retired", False),
        ("active", True),
    ]
    handover = doc["logs"][1]["from_size"]
    new = d.notarize([digest()])[0]
    assert new.tree_size > handover
    # the witnesses follow the rotation statement the anchor posts them, and cosign the new key's
    up = until("the new receipt witnessed after the rotation", lambda: witnessed(d, new))
    (d.tmp / "keys2.json").write_bytes(d.get("/v1/keys"))
    for name, r in (("old", old), ("new", up), ("new-fresh", new)):
        path = d.tmp / f"{name}.receipt.json"
        path.write_bytes(r.to_json())
        done = notar("verify", str(path), "--policy", str(d.tmp / "keys2.json"), env=d.env, ok=False)
        want = 1 if name == "new-fresh" else 0  # a fresh receipt is not cosigned by the witnesses yet
        assert done.returncode == want, (name, done.stdout)
        assert "✓ log signature" in done.stdout, (name, done.stdout)
    # the retired key signs a checkpoint beyond its period: refused, in words
    keys_dir = d.data / "keys"
    old_log = Signer.from_key(next(keys_dir.glob("log.key.retired-*")).read_text().strip())
    old_clock = CosignatureSigner.from_key(next(keys_dir.glob("clock.key.retired-*")).read_text().strip())
    cp = parse_checkpoint(parse_note(up.checkpoint).text)
    forged = Receipt.from_obj(
        {
            **json.loads(up.to_json()),
            "checkpoint": sign_checkpoint(cp, old_log, old_clock, int(time.time())),
            "anchors": [],
        }
    )
    path = d.tmp / "forged.receipt.json"
    path.write_bytes(forged.to_json())
    done = notar("verify", str(path), "--policy", str(d.tmp / "keys2.json"), env=d.env, ok=False)
    assert done.returncode == 1, done.stdout
    assert done.stdout.startswith("✗ NOT VALID — ") and "The check 'log signature' failed: " in done.stdout
    assert f"only for tree sizes 0 to {handover} (its key history)" in done.stdout
    assert f"of size {cp.size}, outside that period" in done.stdout


def _entries(d: Deployment, size: int) -> list[bytes]:
    """The first ``size`` entries of the published log, read from its bundles in the store."""
    out: list[bytes] = []
    for n in range((size + TILE_WIDTH - 1) // TILE_WIDTH):
        width = min(TILE_WIDTH, size - n * TILE_WIDTH)
        path = d.data / "store" / "log" / tile_path("entries", n, width)
        out += decode_bundle(path.read_bytes())
    return out[:size]


def test_a_fork_is_refused_by_the_witness_and_reported_by_the_anchor(deployment: Deployment) -> None:
    d = deployment
    w1, w2 = d.witnesses
    size = until(
        "both witnesses holding the log's size, with no traffic",
        lambda: (
            (s := d.metric("notar_witness_cosigned_tree_size", 0))
            == d.metric("notar_witness_cosigned_tree_size", 1)
            and s == parse_checkpoint(parse_note(d.get("/log/checkpoint").decode()).text).size
            and int(s)
        ),
    )
    log = Signer.from_key((d.data / "keys" / "log.key").read_text().strip())  # the test holds the log key
    entries = _entries(d, size)
    fork = Tree([leaf_hash(e) for e in [*entries, b"\x02" + os.urandom(32)]])
    note = sign_note(Checkpoint(ORIGIN, size + 1, fork.root()).format(), [log])
    body = add_checkpoint_body(size, fork.consistency_proof(size, size + 1), note)
    assert http(w1.url + "/add-checkpoint", body).status == 200  # w1 now holds the fork's size + 1
    d.notarize([digest()])  # the real log's size + 1: another root
    until("the anchor reports w1's fork", lambda: "FORK: witness witness.notar.test/w1" in d.readyz())
    assert d.metric("notar_witness_forks_total", 0) >= 1
    assert "FORK: witness witness.notar.test/w1" in d.log_text()
    until(
        "w2 cosigned the real size + 1", lambda: d.metric("notar_witness_cosigned_tree_size", 1) == size + 1
    )
    refused = http(w2.url + "/add-checkpoint", add_checkpoint_body(size + 1, [], note))
    assert refused.status == 422, refused.text  # another root for the size w2 holds
    served = parse_checkpoint(parse_note(http(w2.url + checkpoint_path(ORIGIN)).text).text)
    assert served.size == size + 1 and served.root != fork.root()
