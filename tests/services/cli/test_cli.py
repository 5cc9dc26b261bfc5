"""The real `notar` executable, as users run it: serve, tenant add, notarize, verify, receipt."""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from services.sdk import trusted_keys
from tests.serving import free_port, wait_ready

NOTAR = str(Path(sys.executable).with_name("notar"))


def run(
    *args: str, env: dict[str, str], check: bool = False, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    r = subprocess.run([NOTAR, *args], env=env, capture_output=True, text=True, timeout=timeout)
    if check:
        assert r.returncode == 0, r.stdout + r.stderr
    return r


@dataclass
class Server:
    url: str
    env: dict[str, str]
    keys: list[str]
    data: Path


def start_server(data: Path, origin: str) -> Iterator[Server]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "NOTAR_DATA_DIR": str(data),
        "NOTAR_ORIGIN": origin,
        "NOTAR_BATCH_MS": "10",
        "NOTAR_ANCHOR_INTERVAL_S": "1",
        "NOTAR_URL": url,
        "NOTAR_LISTEN": f"127.0.0.1:{port}",
    }
    proc = subprocess.Popen(
        [NOTAR, "serve"], env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    try:
        wait_ready(url, proc, timeout=30)
        with urllib.request.urlopen(url + "/v1/keys", timeout=5) as r:
            keys = trusted_keys(json.loads(r.read()))
        key = run("tenant", "add", "acme", env=env, check=True).stdout.strip().splitlines()[-1]
        yield Server(url, {**env, "NOTAR_API_KEY": key}, keys, data)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
        assert proc.stdout is not None
        banner = proc.stdout.read()
        assert "listening on" in banner and "notar tenant add" in banner and "log key:" in banner


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from start_server(tmp_path_factory.mktemp("serve"), "cli.notar.test/log")


@pytest.fixture(scope="module")
def other_log(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from start_server(tmp_path_factory.mktemp("other"), "other.notar.test/log")


def key_args(keys: list[str]) -> list[str]:
    return [a for k in keys for a in ("--key", k)]


def make_tree(root: Path, n: int) -> list[Path]:
    files = []
    for i in range(n):
        f = root / f"dir{i % 3}" / f"doc{i}.txt"
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(f"document number {i}\n".encode() * (i + 1))
        files.append(f)
    return files


def test_notarize_a_directory_and_verify_each_file(server: Server, tmp_path: Path) -> None:
    files = make_tree(tmp_path / "docs", 7)
    r = run("notarize", str(tmp_path / "docs"), "--quiet", env=server.env, check=True)
    assert "notarized 7 file(s)" in r.stdout
    for f in files:
        receipt = f.with_name(f.name + ".receipt.json")
        v = run("verify", str(receipt), str(f), *key_args(server.keys), env=server.env)
        assert v.returncode == 0, v.stdout + v.stderr
        assert v.stdout.startswith("✓ VALID — every check holds.") and "✓ signed time" in v.stdout
    again = run("notarize", str(tmp_path / "docs"), "--quiet", env=server.env, check=True)
    assert "notarized 0 file(s), 7 already had a valid receipt" in again.stdout


def test_refusals_name_the_failing_check(server: Server, other_log: Server, tmp_path: Path) -> None:
    f = tmp_path / "contract.pdf"
    f.write_bytes(b"%PDF-1.7 the contract")
    run("notarize", str(f), "--quiet", env=server.env, check=True)
    receipt_file = tmp_path / "contract.pdf.receipt.json"
    receipt = json.loads(receipt_file.read_text())

    f.write_bytes(b"%PDF-1.7 the contract, amended")
    changed = run("verify", str(receipt_file), str(f), *key_args(server.keys), env=server.env)
    assert changed.returncode == 1 and "check 'document' failed" in changed.stdout

    tampered = copy.deepcopy(receipt)
    tampered["log"]["index"] += 1
    (tmp_path / "t.json").write_text(json.dumps(tampered))
    t = run("verify", str(tmp_path / "t.json"), *key_args(server.keys), env=server.env)
    assert t.returncode == 1 and "check 'inclusion' failed" in t.stdout

    wrong = run("verify", str(receipt_file), *key_args(other_log.keys), env=server.env)
    assert wrong.returncode == 1 and "check 'log signature' failed" in wrong.stdout
    assert (
        "no log key you gave (--key) is named after the receipt's origin 'cli.notar.test/log'" in wrong.stdout
    )

    g = tmp_path / "elsewhere.txt"
    g.write_bytes(b"notarized by another log")
    run("notarize", str(g), "--quiet", env=other_log.env, check=True)
    foreign = run(
        "verify", str(tmp_path / "elsewhere.txt.receipt.json"), str(g), *key_args(server.keys), env=server.env
    )
    assert foreign.returncode == 1 and "check 'log signature' failed" in foreign.stdout

    j = run("verify", str(tmp_path / "t.json"), *key_args(server.keys), "--json", env=server.env)
    doc = json.loads(j.stdout)
    assert j.returncode == 1 and doc["valid"] is False and doc["unchecked"] == ["document"]
    assert [c["name"] for c in doc["checks"] if c["status"] == "failed"] == ["inclusion"]

    v1 = {**receipt, "format": "notar.receipt.v1"}
    (tmp_path / "v1.json").write_text(json.dumps(v1))
    old = run("verify", str(tmp_path / "v1.json"), *key_args(server.keys), env=server.env)
    assert old.returncode == 2 and old.stdout == "" and old.stderr.count("\n") == 1, old.stderr
    assert "notar.receipt.v1 is a pre-release format that is not accepted" in old.stderr

    assert run("verify", str(receipt_file), env=server.env).returncode == 2  # no key, no network
    bad = run("verify", str(tmp_path / "missing.json"), *key_args(server.keys), env=server.env)
    assert bad.returncode == 2 and bad.stderr.startswith("notar: ") and len(bad.stderr.splitlines()) == 1


def test_online_without_keys_trusts_the_servers_published_keys_and_says_so(
    server: Server, tmp_path: Path
) -> None:
    f = tmp_path / "memo.txt"
    f.write_bytes(b"a memo")
    run("notarize", str(f), "--quiet", env=server.env, check=True)
    receipt = tmp_path / "memo.txt.receipt.json"
    v = run("verify", str(receipt), str(f), "--online", env=server.env)  # URL is the server's
    assert v.returncode == 0 and v.stdout.startswith("✓ VALID — every check holds."), v.stdout + v.stderr
    assert f"note: keys were fetched from {server.url}: this trusts that server" in v.stderr
    elsewhere = run("verify", str(receipt), "--online", env={**server.env, "NOTAR_URL": "http://127.0.0.1:9"})
    assert elsewhere.returncode != 0 and elsewhere.stdout == "" and "Traceback" not in elsewhere.stderr


def test_a_receipt_naming_a_member_twice_is_refused(server: Server, tmp_path: Path) -> None:
    """Read last-wins, each of these would verify (the valid value comes last); another tool may
    read the first. Refused with one line naming the member, as POST /v1/verify refuses them."""
    f = tmp_path / "deed.txt"
    f.write_bytes(b"the deed")
    run("notarize", str(f), "--quiet", env=server.env, check=True)
    receipt = json.loads((tmp_path / "deed.txt.receipt.json").read_text())
    ok = run(
        "verify", str(tmp_path / "deed.txt.receipt.json"), str(f), *key_args(server.keys), env=server.env
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    text = json.dumps(receipt)
    index = receipt["log"]["index"]
    doubled = {
        "digest": '{"digest": "sha256:' + "00" * 32 + '", ' + text[1:],
        "index": text.replace(f'"index": {index}', f'"index": {index + 1}, "index": {index}', 1),
    }
    for name, body in doubled.items():
        assert body != text and json.loads(body) == receipt  # last-wins reads the valid receipt
        path = tmp_path / f"doubled-{name}.json"
        path.write_text(body)
        r = run("verify", str(path), str(f), *key_args(server.keys), env=server.env)
        assert r.returncode == 2 and r.stdout == "", r.stdout + r.stderr
        assert r.stderr.startswith("notar: ") and len(r.stderr.splitlines()) == 1, r.stderr
        member = "log.index" if name == "index" else name
        assert f"the member '{member}' is named twice in one object" in r.stderr and str(path) in r.stderr


def test_interrupted_notarize_resumes(server: Server, tmp_path: Path) -> None:
    files = make_tree(tmp_path / "many", 60)
    proc = subprocess.Popen(
        [NOTAR, "notarize", str(tmp_path / "many"), "--quiet", "--batch", "1"],
        env=server.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def receipts() -> list[Path]:
        return [f for f in files if f.with_name(f.name + ".receipt.json").exists()]

    deadline = time.monotonic() + 60
    while len(receipts()) < 5 and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = len(receipts())
    assert 0 < done < 60, "the run was not interrupted midway"
    r = run("notarize", str(tmp_path / "many"), "--quiet", env=server.env, check=True)
    assert f"notarized {60 - done} file(s), {done} already had a valid receipt" in r.stdout
    last = files[-1]
    v = run(
        "verify",
        str(last.with_name(last.name + ".receipt.json")),
        str(last),
        *key_args(server.keys),
        env=server.env,
    )
    assert v.returncode == 0


def test_upload_then_receipt_upgrade_and_exports(server: Server, tmp_path: Path) -> None:
    f = tmp_path / "scan.bin"
    f.write_bytes(os.urandom(300_000))
    run("notarize", str(f), "--upload", "--quiet", "--out", str(tmp_path / "out"), env=server.env, check=True)
    receipt_file = tmp_path / "out" / "scan.bin.receipt.json"
    assert run("verify", str(receipt_file), str(f), *key_args(server.keys), env=server.env).returncode == 0
    run("notarize", str(make_tree(tmp_path / "fill", 3)[0]), "--quiet", env=server.env, check=True)
    before = receipt_file.read_bytes()
    no_key = {k: v for k, v in server.env.items() if k != "NOTAR_API_KEY"}  # upgrades need none
    deadline = time.monotonic() + 20
    while True:
        up = run("receipt", "upgrade", str(receipt_file), env=no_key, check=True)
        upgraded = sorted((tmp_path / "out").glob("scan.bin.receipt.*.json"))
        if upgraded or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert receipt_file.read_bytes() == before, "the receipt upgraded is kept as it is (SPEC §5)"
    assert len(upgraded) == 1 and "upgraded" in up.stdout and "anchors: local" in up.stdout, up.stdout
    after = json.loads(upgraded[0].read_text())
    assert upgraded[0].name == f"scan.bin.receipt.{after['log']['tree_size']}.json"
    assert after["entry"] == json.loads(before)["entry"] and after["anchors"]
    assert after["log"]["tree_size"] >= json.loads(before)["log"]["tree_size"]
    again = run("receipt", "upgrade", str(receipt_file), env=no_key, check=True)
    assert "is up to date" in again.stdout or "upgraded" in again.stdout, again.stdout
    assert receipt_file.read_bytes() == before
    receipt_file = upgraded[0]
    v = run("verify", str(receipt_file), str(f), *key_args(server.keys), env=server.env)
    assert v.returncode == 0 and "✓ anchor 1 (local)" in v.stdout
    proof = run("receipt", "export", "--format", "tlog-proof", str(receipt_file), env=server.env, check=True)
    assert proof.stdout.startswith("c2sp.org/tlog-proof@v1\nextra ")
    cose = tmp_path / "scan.cose"
    run(
        "receipt",
        "export",
        "--format",
        "cose",
        str(receipt_file),
        "--out",
        str(cose),
        env=server.env,
        check=True,
    )
    assert cose.read_bytes()[:1] == b"\xd2"
    nokeys = run(
        "receipt",
        "export",
        "--format",
        "cose",
        str(receipt_file),
        env={**server.env, "NOTAR_DATA_DIR": str(tmp_path / "empty")},
    )
    assert nokeys.returncode == 2 and "log key" in nokeys.stderr


def test_bad_settings_stop_with_the_setting_named(tmp_path: Path) -> None:
    env = {**os.environ, "NOTAR_DATA_DIR": str(tmp_path)}
    r = run("serve", "--listen", "nowhere", env=env)
    assert r.returncode == 2 and "LISTEN" in r.stderr
    r = run("serve", env={**env, "NOTAR_STORE": "s4"})
    assert r.returncode == 2 and "STORE" in r.stderr
    (tmp_path / "notar.toml").write_text('BATCH_MS = "fast"\n')
    r = run("serve", "--config", str(tmp_path / "notar.toml"), env=env)
    assert r.returncode == 2 and "BATCH_MS" in r.stderr
    r = run("notarize", str(tmp_path), env=env)
    assert r.returncode == 2 and "API_KEY" in r.stderr
    assert run("--version", env=env, check=True).stdout.startswith("notar ")


def test_upload_sends_documents_that_have_a_receipt_but_are_not_stored(
    server: Server, tmp_path: Path
) -> None:
    f = tmp_path / "minutes.txt"
    f.write_bytes(os.urandom(1000))
    run("notarize", str(f), "--quiet", env=server.env, check=True)
    receipt = (tmp_path / "minutes.txt.receipt.json").read_bytes()
    digest = json.loads(receipt)["digest"]
    auth = {"Authorization": f"Bearer {server.env['NOTAR_API_KEY']}"}

    def stored() -> bytes | None:
        request = urllib.request.Request(f"{server.url}/v1/documents/{digest}", headers=auth)
        try:
            with urllib.request.urlopen(request, timeout=10) as r:
                return bytes(r.read())
        except urllib.error.HTTPError as e:
            assert e.code == 404
            return None

    assert stored() is None
    up = run("notarize", str(f), "--upload", "--quiet", env=server.env, check=True)
    assert "uploaded 1 file(s) that had a valid receipt but were not stored; receipts kept" in up.stdout
    assert stored() == f.read_bytes()
    assert (tmp_path / "minutes.txt.receipt.json").read_bytes() == receipt  # the earlier time is kept
    again = run("notarize", str(f), "--upload", "--quiet", env=server.env, check=True)
    assert "notarized 0 file(s), 1 already had a valid receipt" in again.stdout
    assert "uploaded" not in again.stdout


def test_tenant_add_names_its_store_and_warns_when_no_server_ran_on_it(
    server: Server, tmp_path: Path
) -> None:
    here = run("tenant", "add", "beta", env=server.env, check=True)
    assert f"in the directory store {server.data / 'store'};" in here.stdout and "warning" not in here.stderr
    elsewhere = {**server.env, "NOTAR_DATA_DIR": str(tmp_path / "not-the-servers")}
    lost = run("tenant", "add", "beta", env=elsewhere, check=True)
    assert "no server has run on the directory store" in lost.stderr
    assert "will not know this key" in lost.stderr
    assert str(tmp_path / "not-the-servers" / "store") in lost.stdout


def test_the_readmes_sdk_example_runs(server: Server, tmp_path: Path) -> None:
    readme = (Path(__file__).parents[3] / "README.md").read_text()
    example = readme.split("```python\n", 1)[1].split("```", 1)[0]
    assert "http://127.0.0.1:8080" in example
    (tmp_path / "example.py").write_text(example.replace("http://127.0.0.1:8080", server.url))
    (tmp_path / "contract.pdf").write_bytes(b"%PDF-1.7 the example's contract")
    r = subprocess.run(
        [sys.executable, str(tmp_path / "example.py")],
        cwd=tmp_path,
        env={**server.env, "PYTHONPATH": str(Path(__file__).parents[3])},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0 and r.stdout == "True\n", r.stdout + r.stderr
    v = run(
        "verify",
        str(tmp_path / "contract.pdf.receipt.json"),
        str(tmp_path / "contract.pdf"),
        *key_args(server.keys),
        env=server.env,
    )
    assert v.returncode == 0, v.stdout + v.stderr
