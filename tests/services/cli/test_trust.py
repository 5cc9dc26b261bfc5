"""The client commands never lose a genuine receipt (issue 15, items 2 and 5), on real processes:
`notar serve` and the `notar` command.

- `notar notarize` and `notar receipt upgrade` pin the keys they first see (DATA_DIR/trust.json,
  0600) and refuse a server with other keys for that log: a spoofed URL, a compromised pod, or a
  key change without a signed statement. Before, a re-run against such a server replaced every
  receipt with one that verified only under its keys.
- A rotation is followed only through a statement signed by the pinned key.
- No receipt file is ever replaced: a new receipt goes beside the old one, `FILE.receipt.<tree
  size>.json`, and so does an upgrade.
- An upgrade needs no API key (`GET /v1/anchors`, public), after an erasure too.
"""

from __future__ import annotations

import json
import stat
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from merkle import Signer
from merkle.cosignature import CosignatureSigner, CosignatureVerifier
from merkle.keyhistory import Rotation, clock_key_name
from merkle.note import Verifier
from tests.serving import NotarProcess, notar_cli, notar_serve

ORIGIN = "trust.notar.test/log"


@pytest.fixture(scope="module")
def genuine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NotarProcess]:
    with notar_serve(tmp_path_factory.mktemp("genuine"), ORIGIN) as s:
        yield s


@pytest.fixture(scope="module")
def spoofer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NotarProcess]:
    """Another server calling itself the same log, with keys of its own."""
    with notar_serve(tmp_path_factory.mktemp("spoofer"), ORIGIN) as s:
        yield s


def client(server: NotarProcess, data: Path, *, api_key: bool = True) -> dict[str, str]:
    """The environment of a client of `server` whose DATA_DIR (its trust file) is `data`."""
    env = {**server.env, "NOTAR_DATA_DIR": str(data)}
    if not api_key:
        env.pop("NOTAR_API_KEY")
    return env


def documents(root: Path, n: int = 3) -> list[Path]:
    root.mkdir(parents=True, exist_ok=True)
    files = []
    for i in range(n):
        f = root / f"deed{i}.txt"
        f.write_text(f"deed number {i}\n")
        files.append(f)
    return files


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def get(url: str, key: str | None = None, method: str = "GET") -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    request = urllib.request.Request(url, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            body = r.read()
            return r.status, json.loads(body) if body else None
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_first_use_pins_and_a_server_with_other_keys_is_refused(
    genuine: NotarProcess, spoofer: NotarProcess, tmp_path: Path
) -> None:
    data, docs = tmp_path / "client", tmp_path / "docs"
    documents(docs)
    first = notar_cli("notarize", str(docs), "--quiet", env=client(genuine, data))
    assert first.returncode == 0, first.stderr
    assert f"pinned the keys of {ORIGIN} on first use" in first.stderr and genuine.keys[0] in first.stderr
    trust_file = data / "trust.json"
    assert stat.S_IMODE(trust_file.stat().st_mode) == 0o600
    shown = notar_cli("trust", "show", env=client(genuine, data))
    assert shown.returncode == 0 and ORIGIN in shown.stdout and genuine.keys[0] in shown.stdout
    before, pinned = snapshot(docs), trust_file.read_bytes()

    (docs / "deed0.txt").write_text("deed number 0, amended\n")  # a file the spoofer would take
    before = snapshot(docs)
    for args in (
        ["notarize", str(docs), "--quiet"],
        ["receipt", "upgrade", str(docs / "deed1.txt.receipt.json")],
    ):
        refused = notar_cli(*args, env=client(spoofer, data))
        assert refused.returncode == 1, (args, refused.stdout, refused.stderr)
        line = refused.stderr.strip()
        assert line.startswith(f"notar: refusing the server at {spoofer.url}") and "\n" not in line, line
        assert spoofer.keys[0] in line and "trust.json" in line and "Traceback" not in refused.stderr
        assert snapshot(docs) == before, "nothing written, nothing replaced"
    assert trust_file.read_bytes() == pinned


def test_after_a_key_change_notarize_writes_beside_and_never_replaces(
    genuine: NotarProcess, spoofer: NotarProcess, tmp_path: Path
) -> None:
    data, docs = tmp_path / "client", tmp_path / "docs"
    files = documents(docs)
    assert notar_cli("notarize", str(docs), "--quiet", env=client(genuine, data)).returncode == 0
    originals = snapshot(docs)
    removed = notar_cli("trust", "remove", ORIGIN, env=client(genuine, data))
    assert removed.returncode == 0, removed.stderr  # the user chose to trust the other server
    again = notar_cli("notarize", str(docs), "--quiet", env=client(spoofer, data))
    assert again.returncode == 0, again.stderr
    assert "notarized 3 file(s), 0 already had a valid receipt" in again.stdout
    now = snapshot(docs)
    assert {k: now[k] for k in originals} == originals, "every receipt there is kept as it was"
    new = sorted(set(now) - set(originals))
    assert len(new) == 3 and all(".receipt." in n and n.endswith(".json") for n in new), new
    assert again.stderr.count("kept as it is") == 3
    for f in files:
        beside = [p for p in docs.glob(f.name + ".receipt.*.json")]
        assert len(beside) == 1
        ok = notar_cli(
            "verify",
            str(beside[0]),
            str(f),
            *[a for k in spoofer.keys for a in ("--key", k)],
            env=spoofer.env,
        )
        assert ok.returncode == 0, ok.stdout
    rerun = notar_cli(
        "notarize", str(docs), "--quiet", env=client(spoofer, data)
    )  # receipts are not documents
    assert "notarized 0 file(s), 3 already had a valid receipt" in rerun.stdout, rerun.stdout + rerun.stderr
    assert snapshot(docs) == now


def test_the_keys_given_are_trusted_and_nothing_is_pinned(
    genuine: NotarProcess, spoofer: NotarProcess, tmp_path: Path
) -> None:
    data, docs = tmp_path / "client", tmp_path / "docs"
    documents(docs, 1)
    _, keys = get(genuine.url + "/v1/keys")
    policy = tmp_path / "policy.txt"
    policy.write_text(keys["policy"])
    ok = notar_cli("notarize", str(docs), "--quiet", "--policy", str(policy), env=client(genuine, data))
    assert ok.returncode == 0, ok.stderr
    assert not (data / "trust.json").exists() and "first use" not in ok.stderr
    (docs / "deed0.txt").write_text("another deed\n")
    before = snapshot(docs)
    for trust in (["--policy", str(policy)], ["--key", genuine.keys[0]]):
        refused = notar_cli("notarize", str(docs), "--quiet", *trust, env=client(spoofer, data))
        assert refused.returncode == 1 and "--key / --policy" in refused.stderr, refused.stderr
    assert snapshot(docs) == before


def anchored_upgrade(receipt: Path, env: dict[str, str]) -> Path:
    """Run `notar receipt upgrade` until the anchored receipt is written beside `receipt`."""
    deadline = time.monotonic() + 30
    while True:
        up = notar_cli("receipt", "upgrade", str(receipt), env=env)
        assert up.returncode == 0, up.stdout + up.stderr
        written = sorted(receipt.parent.glob(receipt.name.removesuffix(".json") + ".*.json"))
        if written:
            assert len(written) == 1 and f"upgraded {receipt} -> {written[0]}" in up.stdout, up.stdout
            return written[0]
        assert "no anchored checkpoint covers its tree of" in up.stdout, up.stdout  # not yet: again
        assert time.monotonic() < deadline, "no anchor in 30 s"
        time.sleep(0.5)


def test_an_upgrade_needs_no_api_key_even_after_erasure(genuine: NotarProcess, tmp_path: Path) -> None:
    data, docs = tmp_path / "client", tmp_path / "docs"
    (f,) = documents(docs, 1)
    assert notar_cli("notarize", str(f), "--quiet", env=client(genuine, data)).returncode == 0
    receipt_file = docs / "deed0.txt.receipt.json"
    receipt = json.loads(receipt_file.read_text())
    key = genuine.env["NOTAR_API_KEY"]
    assert get(f"{genuine.url}/v1/receipts/{receipt['digest']}", key, "DELETE")[0] == 204  # erasure
    assert get(f"{genuine.url}/v1/receipts/{receipt['digest']}", key)[0] == 404

    upgraded = anchored_upgrade(receipt_file, client(genuine, data, api_key=False))
    new = json.loads(upgraded.read_text())
    assert upgraded.name == f"deed0.txt.receipt.{new['log']['tree_size']}.json"
    assert json.loads(receipt_file.read_text()) == receipt, "the receipt upgraded is kept"
    assert new["entry"] == receipt["entry"] and new["log"]["index"] == receipt["log"]["index"]
    assert [a["type"] for a in new["anchors"]] == ["local"]
    keys = [a for k in genuine.keys for a in ("--key", k)]
    v = notar_cli("verify", str(upgraded), str(f), *keys, env=genuine.env)
    assert v.returncode == 0 and "✓ anchor 1 (local)" in v.stdout, v.stdout
    again = notar_cli("receipt", "upgrade", str(receipt_file), env=client(genuine, data, api_key=False))
    assert again.returncode == 0 and "is up to date" in again.stdout, again.stdout

    size = receipt["log"]["tree_size"]
    status, anchored = get(f"{genuine.url}/v1/anchors?origin={ORIGIN}&size={size}")
    assert status == 200 and anchored["origin"] == ORIGIN and anchored["size"] >= size
    assert anchored["checkpoint"] == new["checkpoint"] and anchored["anchors"] == new["anchors"]
    for query, expected in (
        (f"origin={ORIGIN}&size={10**12}", 404),
        (f"origin=else.example/log&size={size}", 404),
        (f"size={size}", 400),
        (f"origin={ORIGIN}&size=-1", 400),
    ):
        status, problem = get(f"{genuine.url}/v1/anchors?{query}")
        assert status == expected and problem["status"] == expected, (query, problem)


def statement(old: Signer, new_log: str, new_clock: str) -> str:
    """The rotation from `old` to the keys `notar serve` uses, from tree size 0, signed by `old`."""
    rotation = Rotation(
        ORIGIN, 0, old.verifier(), Verifier.from_key(new_log), CosignatureVerifier.from_key(new_clock)
    )
    return rotation.sign(old)


def test_a_rotation_is_followed_only_through_a_signed_statement(
    genuine: NotarProcess, tmp_path: Path
) -> None:
    """The client pinned the key the log had before (made here: a rotation of notar serve's keys is
    another issue's); the log's keys document lists it, retired, beside the current one — first
    without the statement that hands over from it, then with it (served by a verify pod of the
    same store, as the anchor writes the document at start)."""
    data, docs = tmp_path / "client", tmp_path / "docs"
    (f,) = documents(docs, 1)
    given = notar_cli("notarize", str(f), "--quiet", "--key", genuine.keys[0], env=client(genuine, data))
    assert given.returncode == 0 and not (data / "trust.json").exists(), given.stderr
    previous, previous_clock = Signer.generate(ORIGIN), CosignatureSigner.generate(clock_key_name(ORIGIN))
    old_keys = [previous.verifier().to_key(), previous_clock.verifier().to_key()]
    added = notar_cli("trust", "add", *old_keys, env=client(genuine, data))
    assert added.returncode == 0 and old_keys[0] in added.stdout, added.stderr
    pinned = (data / "trust.json").read_bytes()

    store_keys = genuine.data / "store" / "private" / "log" / "keys.json"
    document = json.loads(store_keys.read_text())
    current = document["logs"][0]
    retired = {**current, "log": old_keys[0], "clock": old_keys[1], "state": "retired", "until_size": 0}
    receipt = docs / "deed0.txt.receipt.json"
    for signed in (False, True):
        handover = {"statement": statement(previous, current["log"], current["clock"])} if signed else {}
        logs = [retired, {**current, **handover}]
        store_keys.write_text(json.dumps({**document, "logs": logs}))
        with notar_serve(genuine.data, ORIGIN, tenant=None, role="verify") as pod:
            env = client(pod, data)
            if not signed:
                refused = notar_cli("receipt", "upgrade", str(receipt), env=env)
                assert refused.returncode == 1 and "no signed rotation statement" in refused.stderr, (
                    refused.stderr
                )
                assert (data / "trust.json").read_bytes() == pinned
            else:
                upgraded = anchored_upgrade(receipt, env)
                assert json.loads(upgraded.read_text())["entry"] == json.loads(receipt.read_text())["entry"]
                shown = notar_cli("trust", "show", env=env).stdout
                assert (
                    old_keys[0] in shown
                    and current["log"] in shown
                    and "by a signed rotation statement" in shown
                )
    store_keys.write_text(json.dumps(document))
