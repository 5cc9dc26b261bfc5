"""SPEC §1: a copy of the anchor's index alone, or of the bucket alone, reveals no notarized
digest, and after `DELETE /v1/receipts/{digest}` the receipt the client kept still verifies.

On a real `notar serve` (fs store), and on the roles as separate processes on SeaweedFS (as in
Kubernetes): known digests are notarized and known documents stored (one smaller than a chunk),
one notarization is erased, the servers stop, and then every byte of the data directories
(RocksDB's table files, write-ahead log, MANIFEST, LOG; the fs store's files and names) and every
object of the bucket (keys and bodies) is searched for the digests (raw, hex, multihash, base64)
and the documents' bytes. A control in each test proves that the search finds them where they
are written in clear, in those same files and objects."""

from __future__ import annotations

import asyncio
import base64
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

import blake3
import pytest

from merkle import parse_digest, verify_receipt
from services.anchor.tenant_index import TenantIndex
from services.published.trust import trusted_keys
from storage.fs import FsStore
from storage.rocks import RocksIndex
from storage.s3 import S3Store
from tests.seaweed import S3Target
from tests.serving import free_port, stop_process, wait_ready

NOTAR = str(Path(sys.executable).with_name("notar"))
ROOT = Path(__file__).resolve().parents[2]
ORIGIN = "privacy.notar.test/log"
CHUNK = 4 * 1024 * 1024


def spellings(raw: bytes, prefix: bytes) -> list[bytes]:
    """A 32-byte digest as anything might hold it: raw, hex, its multihash, base64 (the first 40
    characters: the same wherever the encoding starts on a 3-byte boundary)."""
    multihash = prefix + raw
    return [
        raw,
        raw.hex().encode(),
        raw.hex().upper().encode(),
        multihash,
        base64.b64encode(raw)[:40],
        base64.urlsafe_b64encode(raw)[:40],
        base64.b64encode(multihash)[:40],
    ]


@dataclass
class Secrets:
    """What must not be found: name -> bytes."""

    needles: dict[str, bytes] = field(default_factory=dict)

    def digest(self, name: str, text: str) -> None:
        d = parse_digest(text)
        for i, s in enumerate(spellings(d.value, d.multihash[:2])):
            self.needles[f"{name} #{i}"] = s

    def document(self, name: str, data: bytes) -> None:
        self.digest(f"{name} blake3", "blake3:" + blake3.blake3(data).hexdigest())
        self.digest(f"{name} sha256", "sha256:" + hashlib.sha256(data).hexdigest())
        for at in range(0, len(data), CHUNK):
            chunk = blake3.blake3(data[at : at + CHUNK]).hexdigest()
            self.digest(f"{name} chunk {at // CHUNK}", f"blake3:{chunk}")
        for at in [*range(0, len(data) - 32, 4099), len(data) - 32]:
            self.needles[f"{name} bytes at {at}"] = data[at : at + 32]


def found(blobs: dict[str, bytes], needles: dict[str, bytes]) -> list[tuple[str, str]]:
    return [(n, where) for n, needle in needles.items() for where, blob in blobs.items() if needle in blob]


def log_records(data: bytes) -> bytes:
    """The payloads of a RocksDB log file (write-ahead log, MANIFEST) joined: the format cuts
    records into 32 KiB blocks with a 7-byte header per fragment, which can split a needle."""
    out, at = bytearray(), 0
    while at + 7 <= len(data):
        block_end = (at // 32768 + 1) * 32768
        length, kind = int.from_bytes(data[at + 4 : at + 6], "little"), data[at + 6]
        if block_end - at < 7 or (kind == 0 and length == 0):
            at = block_end  # a block's trailer, or the zeroes after the last record
            continue
        out += data[at + 7 : at + 7 + length]
        at += 7 + length
    return bytes(out)


def directory(root: Path) -> dict[str, bytes]:
    """Every file under `root` (its bytes; a RocksDB log's records too) and every file's name."""
    blobs: dict[str, bytes] = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        blobs[f"name {rel}"] = rel.encode()
        if p.is_file():
            blobs[rel] = p.read_bytes()
            if p.suffix == ".log" or p.name.startswith("MANIFEST-"):
                blobs[f"records of {rel}"] = log_records(blobs[rel])
    return blobs


def rocksdb(index_dir: Path) -> dict[str, bytes]:
    """Every byte of RocksDB's files, and every key and value it holds (table files are
    compressed: a value repeated in a block may not appear in them byte for byte)."""

    async def read() -> dict[str, bytes]:
        index = RocksIndex.open(index_dir)
        try:
            return {f"row {k.hex()}": k + b"\n" + v async for k, v in index.scan(b"")}
        finally:
            await index.close()

    return {**directory(index_dir), **asyncio.run(read())}


async def bucket(target: S3Target, prefix: str, control: bytes = b"") -> dict[str, bytes]:
    """Every object under `prefix` of the bucket: its key and its body; with `control`, one more
    object holding it (in its body, and in its key as hex), deleted afterwards."""
    store = await S3Store.from_config(target.config(prefix=prefix))
    blobs: dict[str, bytes] = {}
    key = f"documents/control-{control[:32].hex()}"
    try:
        if control:
            await store.put(key, control)
        async for name in store.list(""):
            blobs[f"key {name}"] = name.encode()
            blobs[name] = await store.get(name)
        return blobs
    finally:
        if control:
            await store.delete(key)
        await store.close()


# -- talking to the servers -------------------------------------------------------------------


def call(url: str, method: str = "GET", body: Any = None, key: str = "") -> tuple[int, bytes]:
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    if body is not None and not isinstance(body, bytes):
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=60) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


@dataclass
class Server:
    role: str
    url: str
    proc: subprocess.Popen[bytes]
    log: Path


def serve(role: str, env: dict[str, str], logs: Path) -> Server:
    port = free_port()
    env = {**env, "NOTAR_LISTEN": f"127.0.0.1:{port}"}
    log = logs / f"{role}-{port}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([NOTAR, "serve", "--role", role], env=env, stdout=out, stderr=out)
    return Server(role, f"http://127.0.0.1:{port}", proc, log)


def stop(servers: list[Server]) -> None:
    for s in servers:
        stop_process(s.proc, timeout=60)
        assert s.proc.returncode == 0, f"{s.role} exited {s.proc.returncode}:\n{s.log.read_text()[-3000:]}"


def notar(env: dict[str, str], *args: str) -> str:
    run = subprocess.run([NOTAR, *args], env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    return run.stdout.strip().splitlines()[-1]


@dataclass
class Kept:
    """What the client kept, and what must be searched for."""

    secrets: Secrets
    erased: dict[str, Any]  # the kept receipt of the erased notarization
    alive: dict[str, Any]  # a receipt of a notarization that was not erased
    keys: list[str]


def exercise(ingest: str, verify: str, key: str, other: str) -> Kept:
    """Notarize and store known things as tenant acme, erase one notarization and one document."""
    secrets = Secrets()
    digests = [f"blake3:{os.urandom(32).hex()}" for _ in range(10)]
    digests += [f"sha256:{os.urandom(32).hex()}" for _ in range(10)]
    for i, d in enumerate(digests):
        secrets.digest(f"digest {i}", d)
    status, body = call(f"{ingest}/v1/digests", "POST", {"digests": digests}, key)
    assert status == 200, body
    receipts = json.loads(body)["receipts"]
    assert call(f"{ingest}/v1/digests", "POST", {"digests": digests[:3]}, other)[0] == 200
    small, large = os.urandom(1000), os.urandom(CHUNK + 12345)
    for name, data in (("small document", small), ("large document", large)):
        secrets.document(name, data)
        status, body = call(f"{ingest}/v1/documents", "PUT", data, key)
        assert status == 201, body
    erased_doc = "sha256:" + hashlib.sha256(large).hexdigest()
    assert call(f"{ingest}/v1/documents/{erased_doc}", "DELETE", key=key)[0] == 204
    assert call(f"{ingest}/v1/documents/{erased_doc}", key=key)[0] == 404
    got = call(f"{ingest}/v1/documents/blake3:{blake3.blake3(small).hexdigest()}", key=key)
    assert got == (200, small)

    assert call(f"{verify}/v1/receipts/{digests[0]}", "DELETE", key=key)[0] == 204
    assert call(f"{verify}/v1/receipts/{digests[0]}", key=key)[0] == 404
    assert call(f"{verify}/v1/receipts/{digests[0]}", key=other)[0] == 200  # theirs stays
    assert call(f"{verify}/v1/receipts/{digests[1]}", key=key)[0] == 200
    status, body = call(f"{verify}/v1/keys")
    keys = trusted_keys(json.loads(body))
    assert verify_receipt(receipts[0], keys=keys, digest=digests[0]).valid
    return Kept(secrets, receipts[0], receipts[1], keys)


def check_index(index_dir: Path, index_key: bytes, kept: Kept) -> None:
    """No row of the erased notarization, by look-up or byte for byte; the other rows there."""
    rows = TenantIndex(index_key, origin=ORIGIN)

    def row(r: dict[str, Any]) -> tuple[bytes, bytes]:
        d = parse_digest(r["digest"])
        built = rows.rows(["acme"], [d.multihash], [r["log"]["index"]], [bytes.fromhex(r["salt"])])
        [(key, value)] = built.items()
        return key, value

    # Raw files and the rows RocksDB holds: a table block is compressed, so a row there need not
    # appear byte for byte (a 4-byte back-reference into a salt is rare, not impossible).
    files = rocksdb(index_dir)
    erased_key, erased_value = row(kept.erased)
    _, alive_value = row(kept.alive)
    assert found(files, {"a live row": alive_value}), "the search must find a row that is there"
    assert found(files, {"erased key": erased_key, "erased salt": erased_value}) == []

    async def scan() -> list[tuple[bytes, bytes]]:
        index = RocksIndex.open(index_dir)
        try:
            d = parse_digest(kept.erased["digest"])
            return [item async for item in index.scan(rows.prefix("acme", d.multihash))]
        finally:
            await index.close()

    assert asyncio.run(scan()) == []
    assert verify_receipt(kept.erased, keys=kept.keys, digest=kept.erased["digest"]).valid


CONTROL = """
import asyncio, json, os, sys
from storage.rocks import RocksIndex

async def main() -> None:
    index = RocksIndex.open(sys.argv[1])
    rows = {bytes.fromhex(k): bytes.fromhex(v) for k, v in json.load(sys.stdin).items()}
    await index.write_batch(rows, sync=True)
    os._exit(0)  # no close: the rows stay in the write-ahead log, as after a crash

asyncio.run(main())
"""


def control_in_index(index_dir: Path, secrets: Secrets) -> None:
    """Write every needle into RocksDB itself: the search must then find each, in its files (the
    write-ahead log, uncompressed; table files are compressed, where a needle repeated in a block
    may be cut by a back-reference) and among its rows."""
    rows = {f"control {n}".encode().hex(): v.hex() for n, v in secrets.needles.items()}
    run = subprocess.run(
        [sys.executable, "-c", CONTROL, str(index_dir)],
        input=json.dumps(rows),
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    for blobs in (directory(index_dir), rocksdb(index_dir)):
        hits = {n for n, _ in found(blobs, secrets.needles)}
        assert hits == set(secrets.needles), sorted(set(secrets.needles) - hits)[:5]


# -- the tests --------------------------------------------------------------------------------


@pytest.fixture
def base_env() -> Iterator[dict[str, str]]:
    yield {
        **{k: v for k, v in os.environ.items() if not k.startswith(("NOTAR_", "AWS_", "OTEL_"))},
        "PYTHONUNBUFFERED": "1",
        "NOTAR_ORIGIN": ORIGIN,
        "NOTAR_BATCH_MS": "10",
    }


def test_notar_serve_keeps_nothing_in_clear(tmp_path: Path, base_env: dict[str, str]) -> None:
    data = tmp_path / "data"
    env = {**base_env, "NOTAR_DATA_DIR": str(data)}
    server = serve("all", env, tmp_path)
    try:
        wait_ready(server.url, server.proc)
        acme, globex = notar(env, "tenant", "add", "acme"), notar(env, "tenant", "add", "globex")
        kept = exercise(server.url, server.url, acme, globex)
    finally:
        stop([server])
    everything = directory(tmp_path) | {f"index {k}": v for k, v in rocksdb(data / "index").items()}
    assert [b for b in everything if b.startswith("data/index/")], "RocksDB's files are searched"
    assert [b for b in everything if b.endswith(".log") and "/" not in b], "the server's log too"
    assert [b for b in everything if b.startswith("index row")], "RocksDB's rows are searched"
    assert [b for b in everything if b.startswith("data/store/documents/")], "the documents are searched"
    assert found(everything, kept.secrets.needles) == []
    index_key = bytes.fromhex((data / "keys" / "index.key").read_text())
    check_index(data / "index", index_key, kept)

    control_in_index(data / "index", kept.secrets)
    store = FsStore(data / "store")
    asyncio.run(store.put("documents/control", b"".join(kept.secrets.needles.values())))
    asyncio.run(store.close())
    hits = {n for n, _ in found(directory(data / "store"), kept.secrets.needles)}
    assert hits == set(kept.secrets.needles)


def test_split_roles_on_s3_keep_nothing_in_clear(
    tmp_path: Path, base_env: dict[str, str], s3_target: S3Target
) -> None:
    prefix = f"privacy-{uuid.uuid4().hex[:12]}/"
    s3 = {
        "NOTAR_STORE": "s3",
        "NOTAR_S3_ENDPOINT": s3_target.endpoint,
        "NOTAR_S3_BUCKET": s3_target.bucket,
        "NOTAR_S3_REGION": s3_target.region,
        "NOTAR_S3_PREFIX": prefix,
        "AWS_ACCESS_KEY_ID": s3_target.access_key,
        "AWS_SECRET_ACCESS_KEY": s3_target.secret_key,
    }
    # the index key as a deployment holds it: made once, given to every anchor and ingest pod
    secrets_dir = tmp_path / "secrets"
    notar({**base_env, "NOTAR_DATA_DIR": str(secrets_dir)}, "keygen")
    index_key_file = secrets_dir / "keys" / "index.key"
    env = {**base_env, **s3, "NOTAR_INDEX_KEY_FILE": str(index_key_file)}
    anchor = serve("anchor", {**env, "NOTAR_DATA_DIR": str(tmp_path / "anchor")}, tmp_path)
    servers = [anchor]
    try:
        wait_ready(anchor.url, anchor.proc)
        for role in ("ingest", "verify"):
            pod = {**env, "NOTAR_DATA_DIR": str(tmp_path / role), "NOTAR_ANCHOR_URL": anchor.url}
            servers.append(serve(role, pod, tmp_path))
        for s in servers[1:]:
            wait_ready(s.url, s.proc)
        tenants = {**env, "NOTAR_DATA_DIR": str(tmp_path / "cli")}
        acme, globex = notar(tenants, "tenant", "add", "acme"), notar(tenants, "tenant", "add", "globex")
        kept = exercise(servers[1].url, servers[2].url, acme, globex)
    finally:
        stop(servers)
    everything = asyncio.run(bucket(s3_target, prefix))
    assert [k for k in everything if k.startswith("documents/")], "the documents are searched"
    everything |= directory(tmp_path)  # the pods' data directories and logs
    everything |= {f"index {k}": v for k, v in rocksdb(tmp_path / "anchor" / "index").items()}
    assert [k for k in everything if k.startswith("anchor/index/")], "RocksDB's files are searched"
    assert [b for b in everything if b.startswith("index row")], "RocksDB's rows are searched"
    assert found(everything, kept.secrets.needles) == []
    check_index(tmp_path / "anchor" / "index", bytes.fromhex(index_key_file.read_text()), kept)

    control_in_index(tmp_path / "anchor" / "index", kept.secrets)

    control = asyncio.run(bucket(s3_target, prefix, b"".join(kept.secrets.needles.values())))
    hits = {n for n, _ in found(control, kept.secrets.needles)}
    assert hits == set(kept.secrets.needles)
