"""The built image serves: its ENTRYPOINT started as each deployment runs it, then notarization
end to end through it over HTTP, and the receipts checked offline with the host's `notar verify`.

- all-in-one: the image's own ENTRYPOINT + CMD (`notar serve`), its data directory a host
  directory owned by the image's user;
- dev, prod: the anchor, ingest and verify pods of that overlay, run from the rendered manifests
  (tests/image/pods.py) against the test SeaweedFS; in prod the signing keys and the index key
  come from Secrets made with `notar keygen` in the image and pass through the `install-keys` and
  `install-index-key` init containers.
Every process runs on the container's read-only root, so a write outside the volumes fails.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.image.engine import Container, Process, wait_http
from tests.image.pods import Pod, environment, notar_workloads, pod_spec, port_number, start
from tests.k8s.conftest import Rendered
from tests.seaweed import S3Target, free_ports

DEPLOYMENTS = ("all-in-one", "dev", "prod")
NOTAR = Path(sys.executable).parent / "notar"  # the host's CLI: what an auditor runs


@dataclass
class Deployment:
    name: str
    ingest: str  # base URLs
    verify: str
    api_key: str
    processes: list[Process]
    pods: list[Pod] = field(default_factory=list)
    signing_keys: dict[str, str] = field(default_factory=dict)  # from `notar keygen`, prod only


def last_line(output: str) -> str:
    return output.strip().splitlines()[-1]


def all_in_one(box: Container, tmp: Path) -> Deployment:
    data, scratch = tmp / "data", tmp / "tmp"
    data.mkdir()
    scratch.mkdir()
    os.chown(data, *box.image.user)  # as an operator prepares the volume of `docker run -v`
    os.chmod(scratch, 0o1777)
    volumes = {box.image.env["NOTAR_DATA_DIR"]: data, "/tmp": scratch}
    (port,) = free_ports(1)
    proc = box.run(box.image.argv(None, None), env={"NOTAR_LISTEN": f"127.0.0.1:{port}"}, volumes=volumes,
                   log=tmp / "serve.log")
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(url + "/readyz", proc)
        key = last_line(box.check(box.image.argv(None, ["tenant", "add", "acme"]), tmp, volumes=volumes))
    except BaseException:
        proc.stop()
        raise
    return Deployment("all-in-one", url, url, key, [proc])


def split(box: Container, rendered: Rendered, target: S3Target, tmp: Path) -> Deployment:
    secrets: dict[str, dict[str, bytes]] = {
        "notar-s3": {"AWS_ACCESS_KEY_ID": target.access_key.encode(),
                     "AWS_SECRET_ACCESS_KEY": target.secret_key.encode()},
    }
    signing: dict[str, str] = {}
    if rendered.overlay == "prod":  # the Secret notar-signing-keys, made as k8s/README.md says
        keydir = tmp / "keygen"
        keydir.mkdir()
        os.chown(keydir, *box.image.user)
        anchor = pod_spec(notar_workloads(rendered)["anchor"])["containers"][0]
        origin = environment(rendered, anchor, secrets)["NOTAR_ORIGIN"]
        printed = box.check(box.image.argv(None, ["keygen", "--origin", origin]), tmp,
                            volumes={box.image.env["NOTAR_DATA_DIR"]: keydir})
        lines = [line.split() for line in printed.splitlines()]
        signing = dict(w for w in lines if w[:1] in (["log"], ["clock"]))
        assert set(signing) == {"log", "clock"}, printed
        secrets["notar-signing-keys"] = {f"{k}.key": (keydir / "keys" / f"{k}.key").read_bytes()
                                         for k in ("log", "clock")}
        secrets["notar-index-key"] = {"index.key": (keydir / "keys" / "index.key").read_bytes()}
    ports = dict(zip(("anchor", "ingest", "verify"), free_ports(3), strict=True))
    shared = {
        "NOTAR_S3_ENDPOINT": target.endpoint,
        "NOTAR_S3_BUCKET": target.bucket,
        "NOTAR_S3_REGION": target.region,
        "NOTAR_S3_PREFIX": f"image-{rendered.overlay}-{uuid.uuid4().hex[:8]}/",
        "NOTAR_ANCHOR_URL": f"http://127.0.0.1:{ports['anchor']}",
        # what the anchor pod advertises in the shard table (prod: SHARDS=4, pod 0 here) for the
        # headless Service's pod name, which does not resolve here
        "NOTAR_SHARD_URL": f"http://127.0.0.1:{ports['anchor']}",
    }
    pods: list[Pod] = []
    try:
        for role in ("anchor", "ingest", "verify"):  # the anchor publishes the keys verify serves
            (tmp / role).mkdir()
            pod = start(box, rendered, role, secrets=secrets, tmp=tmp / role,
                        overrides=shared | {"NOTAR_LISTEN": f"127.0.0.1:{ports[role]}"})
            pods.append(pod)
            wait_http(pod.url + "/readyz", pod.process)
        # as k8s/README.md says: `kubectl exec statefulset/notar-anchor -- notar tenant add acme`
        anchor = pods[0]
        data = {m["mountPath"]: anchor.volumes[m["name"]] for m in anchor.container["volumeMounts"]}
        key = last_line(box.check(["notar", "tenant", "add", "acme"], tmp, volumes=data,
                                  env=anchor.manifest_env | shared, user=anchor.user))
    except BaseException:
        for p in reversed(pods):
            p.process.stop()
        raise
    processes = [p.process for p in pods]
    return Deployment(rendered.overlay, pods[1].url, pods[2].url, key, processes, pods, signing)


@pytest.fixture(scope="module", params=DEPLOYMENTS)
def deployment(request: pytest.FixtureRequest, container: Container, manifests: dict[str, Rendered],
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    tmp = tmp_path_factory.mktemp(f"image-{request.param}")
    before = container.run_dir_listing()
    if request.param == "all-in-one":
        d = all_in_one(container, tmp)
    else:
        d = split(container, manifests[request.param], request.getfixturevalue("s3_target"), tmp)
    yield d
    codes = {p.argv[-1] if p.argv else "?": p.stop() for p in reversed(d.processes)}
    assert all(code == 0 for code in codes.values()), f"not a clean stop: {codes}\n" + "\n".join(
        p.output()[-2000:] for p in d.processes)
    assert container.run_dir_listing() == before, "something wrote under the root filesystem's /run"


def call(method: str, url: str, *, key: str | None = None, body: bytes | None = None,
         json_body: Any = None) -> Any:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    if json_body is not None:
        body, headers["Content-Type"] = json.dumps(json_body).encode(), "application/json"
    req = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as e:
        raise AssertionError(f"{method} {url}: {e.code} {e.read()[:500]!r}") from None


def verifier_keys(doc: dict[str, Any]) -> list[str]:
    """The log's and the clock's verifier keys from GET /v1/keys (flat, or per log)."""
    logs = doc.get("logs") or [doc]
    return [vkey for log in logs for vkey in (log["log"], log["clock"])]


def notar_verify(receipt: dict[str, Any], document: Path | None, keys: list[str], tmp: Path
                 ) -> subprocess.CompletedProcess[str]:
    path = tmp / f"{uuid.uuid4().hex[:8]}.receipt.json"
    path.write_text(json.dumps(receipt))
    argv = [str(NOTAR), "verify", str(path), *([str(document)] if document else [])]
    for k in keys:
        argv += ["--key", k]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120)


def test_notarizes_end_to_end_and_receipts_verify_offline(deployment: Deployment, tmp_path: Path) -> None:
    d = deployment
    keys = verifier_keys(call("GET", d.verify + "/v1/keys"))
    if d.signing_keys:
        assert keys == [d.signing_keys["log"], d.signing_keys["clock"]], "signed with the Secret's keys"

    digests = [f"sha256:{hashlib.sha256(os.urandom(32)).hexdigest()}" for _ in range(3)]
    answer = call("POST", d.ingest + "/v1/digests", key=d.api_key, json_body={"digests": digests})
    receipts = answer["receipts"]
    assert [r["digest"] for r in receipts] == digests

    document = tmp_path / "contract.bin"
    document.write_bytes(os.urandom(5 * 1024 * 1024 + 7))  # two chunks
    stored = call("PUT", d.ingest + "/v1/documents", key=d.api_key, body=document.read_bytes())
    assert stored["document"]["size"] == document.stat().st_size

    fetched = call("GET", f"{d.verify}/v1/receipts/{stored['document']['digest']}", key=d.api_key)
    assert fetched["entry"] == stored["receipt"]["entry"]
    for receipt, doc in [(receipts[1], None), (fetched, document)]:
        done = notar_verify(receipt, doc, keys, tmp_path)
        assert done.returncode == 0 and "VALID" in done.stdout, done.stdout + done.stderr

    tampered = tmp_path / "tampered.bin"
    tampered.write_bytes(b"x" + document.read_bytes()[1:])
    done = notar_verify(fetched, tampered, keys, tmp_path)
    assert done.returncode == 1 and "NOT VALID" in done.stdout, "the offline check can fail"


def test_every_probe_answers_on_the_container_port(deployment: Deployment, manifests: dict[str, Rendered]
                                                  ) -> None:
    """The probes' routes answer 200 on each pod, and their port is the container port of
    NOTAR_LISTEN (the pods here listen on a free loopback port instead, as they share the host's
    network). The all-in-one server answers the routes the dev overlay's probes use."""
    pods = [(p.url, p.container, p.manifest_env) for p in deployment.pods] or [
        (deployment.ingest, c, {}) for w in notar_workloads(manifests["dev"]).values()
        for c in pod_spec(w)["containers"]
    ]
    for url, c, env in pods:
        probes = [c[k]["httpGet"] for k in ("startupProbe", "livenessProbe", "readinessProbe") if k in c]
        assert probes, f"{c['name']}: no probe"
        for probe in probes:
            if env:
                assert port_number(c, probe["port"]) == int(env["NOTAR_LISTEN"].rpartition(":")[2])
            with urllib.request.urlopen(url + probe["path"], timeout=10) as r:
                assert r.status == 200, f"{deployment.name} {c['name']} {probe['path']}"
