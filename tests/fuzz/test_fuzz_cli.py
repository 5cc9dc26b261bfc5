"""Crafted receipt files against the real `notar verify` executable: exit 0 only for a receipt
whose evidence is a seed's (what was not checked listed), 1 with the failing check named for a
tampered one, 2 with one line on stderr for a file that is not a well-formed notar.receipt.v2
receipt (not JSON, a v1 receipt, an unknown or doubled member...); never a traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import orjson

from loadtest.fuzz_mutations import mutated_receipts
from loadtest.fuzz_oracle import Oracle
from loadtest.fuzz_seeds import Seeds
from merkle import Receipt, verify_receipt
from merkle.anchors import offline_anchor_verifiers
from merkle.anchors.rfc3161 import load_certificates
from tests.fuzz.conftest import sample

NOTAR = str(Path(sys.executable).with_name("notar"))
CRAFTED = 40

NOT_RECEIPTS: dict[str, bytes] = {
    "empty": b"",
    "not-utf8": b"\xff\xfe\x00{",
    "truncated": b'{"format": "notar.receipt.v2", "log": {',
    "nan": b'{"format": NaN}',
    "lone-surrogate": b'{"format": "\\ud800"}',
    "deep": b"[" * 100_000 + b"]" * 100_000,
    "bom": b"\xef\xbb\xbf{}",
}
JSON_NOT_RECEIPTS: dict[str, bytes] = {
    "number": b"1e308",
    "string": b'"notar.receipt.v2"',
    "list": b"[{}]",
    "v1": b'{"format": "notar.receipt.v1", "digest": "sha256:00", "entry": "00", "log": {}, "anchors": []}',
    "doubled": b'{"format": "notar.receipt.v2", "format": "notar.receipt.v2"}',
}


def _run(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([NOTAR, *args], capture_output=True, text=True, timeout=120)


def test_crafted_receipt_files_against_notar_verify(seeds: Seeds, tmp_path: Path) -> None:
    ca = tmp_path / "tsa-ca.pem"
    ca.write_text(seeds.ca_pem)
    files: dict[Path, bytes] = {}
    for name, data in {**NOT_RECEIPTS, **JSON_NOT_RECEIPTS}.items():
        files[tmp_path / f"{name}.json"] = data
    for i, r in enumerate([seeds.receipts[3], *sample(mutated_receipts(seeds), CRAFTED)]):
        files[tmp_path / f"crafted-{i}.json"] = json.dumps(r).encode()
    for path, data in files.items():
        path.write_bytes(data)
    key_args = [a for k in seeds.keys for a in ("--key", k)]
    with ThreadPoolExecutor(2) as pool:
        runs = dict(
            zip(
                files,
                pool.map(lambda p: _run(["verify", str(p), *key_args, "--tsa-ca", str(ca)]), files),
                strict=True,
            )
        )

    oracle = Oracle(seeds, checked_kinds={"local", "rfc3161"})  # offline: evm is not checked
    verifiers = offline_anchor_verifiers(keys=seeds.keys, tsa_cas=load_certificates(seeds.ca_pem.encode()))
    codes = {0: 0, 1: 0, 2: 0}
    for path, done in runs.items():
        what = f"{path.name}: exit {done.returncode}\n{done.stdout[-1500:]}\n{done.stderr[-1500:]}"
        assert "Traceback" not in done.stdout + done.stderr, what
        codes[done.returncode] += 1
        try:
            Receipt.from_json(files[path])
        except ValueError:
            assert done.returncode == 2, what
            assert done.stdout == "" and done.stderr.count("\n") == 1, what
            assert done.stderr.startswith(f"notar: {path} is not "), what
            continue
        result = verify_receipt(files[path], keys=seeds.keys, anchor_verifiers=verifiers)
        assert oracle.judge(orjson.loads(files[path]), result) is None, (
            oracle.judge(orjson.loads(files[path]), result),
            what,
        )
        assert done.returncode == (0 if result.valid else 1), what
        first = done.stdout.splitlines()[0]
        if result.valid:
            unchecked = ", ".join(c.name for c in result.unchecked)
            assert first.startswith(
                "✓ VALID as far as checked — not checked: " if unchecked else "✓ VALID — every"
            ), what
        else:
            failed = result.failed[0]
            assert first.startswith("✗ NOT VALID — "), what
            assert done.stdout.splitlines()[1].startswith(f"  The check '{failed.name}' failed"), what
        assert all(line.startswith("  note: ") for line in done.stderr.splitlines()), what
    print(f"notar verify: {len(runs)} files, exit codes {codes}")
    assert codes[2] >= len(NOT_RECEIPTS) + len(JSON_NOT_RECEIPTS) and codes[1] >= 4 and codes[0] >= 1, codes


def test_a_malformed_key_is_a_usage_error_not_a_traceback(seeds: Seeds, tmp_path: Path) -> None:
    # Found while fuzzing: `notar verify --key` with a malformed key string raised ValueError with
    # a traceback (exit 1); it is a usage error like a missing key.
    receipt = tmp_path / "r.json"
    receipt.write_text(json.dumps(seeds.receipts[0]))
    wrong_id = seeds.keys[0].split("+")[0] + "+00000000+" + seeds.keys[0].split("+", 2)[2]
    for key in ("nonsense", "a+00000000+AQ==", wrong_id):
        done = _run(["verify", str(receipt), "--key", key])
        assert done.returncode == 2 and done.stdout == "", (key, done.stdout, done.stderr)
        assert done.stderr.startswith("notar: verifier key ") and done.stderr.count("\n") == 1, done.stderr
