"""A third-party conformance test: Go's golang.org/x/mod/sumdb (note, tlog) checks a running
`notar serve`.

The Go program (tests/conformance/go/main.go) is built here against Debian's
golang-golang-x-mod-dev in GOPATH mode (GO111MODULE=off: no module download, no network). It
reads only the server's public routes and the receipts saved here, and prints one line per
check; each test below asserts one group of those lines, so a failure names what broke.
The negative tests tamper with a receipt, or with the log's bytes through a loopback proxy, and
assert that the Go program fails the matching check (so these tests can fail).
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from hashlib import sha256
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.conformance.gobuild import build
from tests.serving import free_port, wait_ready

NOTAR = str(Path(sys.executable).with_name("notar"))
SOURCE = Path(__file__).parent / "go"
REQUESTS = (1, 37, 200, 255, 2, 70)  # digests per POST /v1/digests: 565 entries, > 2 full tiles
ORIGIN = "conformance.notar.test/log"
TENANT = "acme"


@pytest.fixture(scope="module")
def conformance_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Go program, built offline in GOPATH mode."""
    return build(SOURCE, tmp_path_factory.mktemp("go"), "notar-conformance")


@dataclass
class Served:
    url: str
    receipts: Path
    count: int


def _post(url: str, key: str, digests: list[str]) -> list[dict[str, object]]:
    req = urllib.request.Request(
        url + "/v1/digests",
        data=json.dumps({"digests": digests}).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=60) as r:
        receipts = json.loads(r.read())["receipts"]
    assert isinstance(receipts, list) and len(receipts) == len(digests)
    return receipts


def _published_size(url: str) -> int:
    with urllib.request.urlopen(url + "/log/checkpoint", timeout=5) as r:
        return int(r.read().decode().split("\n")[1])


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """A real `notar serve` holding REQUESTS' digests (blake3 and sha256), their receipts saved."""
    data = tmp_path_factory.mktemp("serve")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "NOTAR_DATA_DIR": str(data / "data"),
        "NOTAR_ORIGIN": ORIGIN,
        "NOTAR_BATCH_MS": "10",
        "NOTAR_LISTEN": f"127.0.0.1:{port}",
    }
    proc = subprocess.Popen([NOTAR, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_ready(url, proc, timeout=60)
        added = subprocess.run(
            [NOTAR, "tenant", "add", TENANT], env=env, capture_output=True, text=True, timeout=60
        )
        assert added.returncode == 0, added.stderr
        key = added.stdout.strip().splitlines()[-1]
        out = data / "receipts"
        out.mkdir()
        n = 0
        for count in REQUESTS:
            digests = [
                f"sha256:{sha256(secrets.token_bytes(8)).hexdigest()}"
                if i % 3 == 0
                else f"blake3:{secrets.token_hex(32)}"
                for i in range(count)
            ]
            for receipt in _post(url, key, digests):
                (out / f"{n:04d}.json").write_text(json.dumps(receipt))
                n += 1
        deadline = time.monotonic() + 30
        while _published_size(url) < n:  # receipts may come before their checkpoint is published
            assert time.monotonic() < deadline, "the log was not published in 30 s"
            time.sleep(0.1)
        yield Served(url, out, n)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)


@dataclass(frozen=True)
class Run:
    returncode: int
    output: str
    checks: dict[str, tuple[bool, str]]

    def named(self, suffix: str) -> dict[str, tuple[bool, str]]:
        """The checks whose name is `suffix` or ends in ' ' + `suffix`."""
        return {k: v for k, v in self.checks.items() if k == suffix or k.endswith(" " + suffix)}

    def failed(self) -> list[str]:
        return [f"{k}: {d}" for k, (ok, d) in self.checks.items() if not ok]


def run_conformance(binary: Path, api: str, receipts: Path | None, log: str | None = None) -> Run:
    args = [str(binary), "-api", api]
    if log is not None:
        args += ["-log", log]
    if receipts is not None:
        args += ["-receipts", str(receipts), "-subject", TENANT]
    r = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert r.returncode in (0, 1), f"the Go program broke (exit {r.returncode}):\n{r.stdout}{r.stderr}"
    checks: dict[str, tuple[bool, str]] = {}
    for line in r.stdout.splitlines():
        status, _, rest = line.partition(" ")
        if status in ("ok", "FAIL"):
            name, _, detail = rest.strip().partition(": ")
            checks[name] = (status == "ok", detail)
    assert checks, f"the Go program printed no check:\n{r.stdout}{r.stderr}"
    return Run(r.returncode, r.stdout, checks)


@pytest.fixture(scope="module")
def conformance(conformance_bin: Path, served: Served) -> Run:
    return run_conformance(conformance_bin, served.url, served.receipts)


def assert_all_ok(run: Run, *names: str, count: int | None = None) -> None:
    for name in names:
        found = run.named(name)
        assert found, f"no {name!r} check ran:\n{run.output}"
        bad = [f"{k}: {d}" for k, (ok, d) in found.items() if not ok]
        assert not bad, f"{len(bad)} of {len(found)} {name!r} checks failed:\n" + "\n".join(bad[:10])
        if count is not None:
            assert len(found) == count, f"{len(found)} {name!r} checks, expected {count}"


def test_checkpoint_opens_under_the_log_key_named_after_its_origin(conformance: Run) -> None:
    assert_all_ok(conformance, "keys", "log key", "checkpoint signature", "clock cosignature")
    assert conformance.checks["log key"][1].startswith(ORIGIN + "+")


def test_tree_hash_over_the_tiles_is_the_checkpoint_root(conformance: Run, served: Served) -> None:
    assert served.count > 2 * 256  # full and partial tiles at level 0, a partial one at level 1
    assert_all_ok(conformance, "tree hash", "tiles", "bundles")


def test_receipts_pass_check_record_and_are_in_the_log(conformance: Run, served: Served) -> None:
    assert_all_ok(conformance, "checkpoint", "inclusion", "in log", "proof api", count=served.count)


def test_consistency_proofs_pass_check_tree(conformance: Run) -> None:
    lines = {k: v for k, v in conformance.checks.items() if k.startswith("consistency ")}
    assert len(lines) >= len(REQUESTS) - 1, conformance.output  # one tree per request, but the last
    assert all(ok for ok, _ in lines.values()), lines


def test_entries_are_v2_commitments_that_hide_the_digest(conformance: Run, served: Served) -> None:
    """Format v2: the receipt names the tenant as its subject, its entry is 0x02 || SHA-256(...) of
    its digest, salt and subject, every published entry is such a commitment, and none holds a
    notarized digest in clear."""
    assert_all_ok(conformance, "format v2", "entry v2", "subject", "hidden", count=served.count)
    assert_all_ok(conformance, "bundles v2")


def test_the_whole_run_passes(conformance: Run) -> None:
    kinds: dict[str, int] = {}  # "receipt 0001.json entry v2" counts as "entry v2"
    for name, (ok, _) in conformance.checks.items():
        if not ok:
            kind = name.split(" ", 2)[2] if name.startswith("receipt ") else name
            kinds[kind] = kinds.get(kind, 0) + 1
    first = "\n".join(conformance.failed()[:10])
    assert conformance.returncode == 0, f"failed checks by kind: {kinds}\n{first}"


def _tampered_receipts(served: Served, tmp_path: Path, change: str) -> Path:
    original = json.loads((served.receipts / "0300.json").read_text())
    receipt = json.loads(json.dumps(original))
    if change == "inclusion":
        node = receipt["log"]["inclusion"][0]
        receipt["log"]["inclusion"][0] = ("0" if node[0] != "0" else "1") + node[1:]
    elif change == "entry":
        entry = receipt["entry"]
        receipt["entry"] = entry[:-1] + ("0" if entry[-1] != "0" else "1")
    elif change == "index":
        receipt["log"]["index"] += 1
    out = tmp_path / "tampered"
    out.mkdir()
    (out / "0300.json").write_text(json.dumps(receipt))
    return out


@pytest.mark.parametrize(
    ("change", "failing"),
    [("inclusion", ["inclusion"]), ("entry", ["inclusion", "entry v2", "in log"]), ("index", ["inclusion"])],
)
def test_a_tampered_receipt_fails(
    conformance_bin: Path, served: Served, tmp_path: Path, change: str, failing: list[str]
) -> None:
    run = run_conformance(conformance_bin, served.url, _tampered_receipts(served, tmp_path, change))
    assert run.returncode == 1
    for name in failing:
        assert not run.checks[f"receipt 0300.json {name}"][0], run.output


class _Tamper(BaseHTTPRequestHandler):
    """Forwards GET /log/… to the server, flipping one bit in the middle of the paths asked for."""

    upstream = ""
    prefix = ""

    def do_GET(self) -> None:
        with urllib.request.urlopen(self.upstream + self.path, timeout=30) as r:
            body = bytearray(r.read())
        if self.path.removeprefix("/log/").startswith(self.prefix):
            body[len(body) // 2] ^= 1
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(bytes(body))

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.mark.parametrize(
    ("prefix", "failing"),
    [
        ("checkpoint", "checkpoint signature"),
        ("tile/0/000", "tiles"),  # a full tile: the root does not read it, the leaves' checks do
        ("tile/0/002.p/", "tree hash"),  # the rightmost partial tile
        ("tile/1/000.p/", "tree hash"),  # level 1: the hash of the first 512 leaves
        ("tile/entries/001", "bundles"),
    ],
)
def test_tampered_log_bytes_fail(conformance_bin: Path, served: Served, prefix: str, failing: str) -> None:
    handler = type("Tamper", (_Tamper,), {"upstream": served.url, "prefix": prefix})
    proxy = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    try:
        log = f"http://127.0.0.1:{proxy.server_address[1]}/log"
        run = run_conformance(conformance_bin, served.url, served.receipts, log=log)
    finally:
        proxy.shutdown()
        proxy.server_close()
    assert run.returncode == 1
    assert not run.checks[failing][0], f"{failing!r} passed with {prefix} tampered" + run.output[:3000]
