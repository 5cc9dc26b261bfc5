"""The web verifier (GET /verify) in Debian's Chromium, against a running `notar serve`.

pytest starts two `notar serve` (our log and another one), notarizes files with the `notar`
command, builds anchored receipts (the server's local blocks, an RFC 3161 token from a real
openssl TSA, an EVM record) and a corpus of valid and tampered receipts, then runs the Node
driver `web_verifier.mjs` (playwright-core, the npm package the issue names). The driver asserts
the browser cases and saves a screenshot of each verdict under build/verify-page/; this side
checks that the page and `notar verify` give the same checks with the same outcomes on every
receipt of the corpus.

Why a Node driver: playwright-core from npm is pinned in package-lock.json and needs no browser
download (it drives /usr/bin/chromium); the Python `playwright` wheel would bring a second copy of
Playwright with its own Node runtime.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import hashlib
import io
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from services.anchor.anchors import AnchorStore
from services.cli import main as notar_main
from services.verify.page import build_page
from storage.fs import FsStore
from tests.serving import free_port, wait_ready
from tests.tsa import Pki, make_pki

REPO = Path(__file__).resolve().parents[3]
DRIVER = Path(__file__).with_name("web_verifier.mjs")
CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = REPO / "build" / "verify-page"
NOTAR = str(Path(sys.executable).with_name("notar"))
EXPLORER = "https://explorer.example/chain"
# Where the page knowingly checks less than `notar verify`: it does not verify an RFC 3161 token's
# CMS signature and certificate chain (it reads the TSA's name and time and matches the message
# imprint to the tree head); `notar verify --tsa-ca` does.
KNOWN_DIFFERENCES = {"anchored-rfc3161-bad-signature": "anchor 2 (rfc3161)"}
Receipt = dict[str, Any]


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("true", "1", "yes")


def browser_tools() -> str:
    """The node executable; skips (fails under CI=true) when Chromium or playwright-core is missing."""
    node = shutil.which("node")
    missing = [
        what
        for what, ok in (
            ("node (apt-get install nodejs npm)", node is not None),
            ("/usr/bin/chromium (apt-get install -y chromium)", CHROMIUM.exists()),
            ("node_modules/playwright-core (npm ci)", (REPO / "node_modules" / "playwright-core").is_dir()),
        )
        if not ok
    ]
    if missing:
        message = "the web verifier tests need " + ", ".join(missing) + ": run scripts/install --test"
        if _in_ci():
            pytest.fail(message + "; in CI they must run, never skip")
        pytest.skip(message)
    assert node is not None
    return node


@dataclass
class Serve:
    proc: subprocess.Popen[str]
    url: str
    env: dict[str, str]
    data: Path
    log_key: str
    clock_key: str


def notar(*args: str, env: dict[str, str]) -> str:
    r = subprocess.run([NOTAR, *args], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


@contextlib.contextmanager
def serve(data: Path, origin: str) -> Iterator[Serve]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "NOTAR_DATA_DIR": str(data),
        "NOTAR_ORIGIN": origin,
        "NOTAR_LISTEN": f"127.0.0.1:{port}",
        "NOTAR_URL": url,
        "NOTAR_BATCH_MS": "10",
        "NOTAR_ANCHOR_INTERVAL_S": "1",
    }
    proc = subprocess.Popen(
        [NOTAR, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True
    )
    try:
        wait_ready(url, proc, timeout=60)
        keys = _get(url + "/v1/keys")
        api_key = notar("tenant", "add", "court", env=env).strip().splitlines()[-1]
        yield Serve(proc, url, {**env, "NOTAR_API_KEY": api_key}, data, keys["log"], keys["clock"])
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)


def notarize_digest(server: Serve, digest: str, *, salt: bool) -> Receipt:
    body = json.dumps({"digests": [digest], "salt": salt}).encode()
    request = urllib.request.Request(
        server.url + "/v1/digests",
        data=body,
        headers={
            "Authorization": "Bearer " + server.env["NOTAR_API_KEY"],
            "Content-Type": "application/json",
        },
    )
    with urllib.request.urlopen(request, timeout=30) as r:
        receipt: Receipt = json.loads(r.read())["receipts"][0]
    return receipt


def anchored(server: Serve, receipt: Receipt) -> Receipt:
    """`receipt` against the earliest checkpoint that the server anchored (its local block)."""
    index = receipt["log"]["index"]

    async def first() -> tuple[int, str, list[dict[str, Any]]]:
        store = AnchorStore(FsStore(server.data / "store"), refresh_s=0.0)
        deadline = time.monotonic() + 60
        while True:
            found = await store.first_anchored(index + 1)
            if found is not None:
                return found.size, found.note, list(found.records)
            assert time.monotonic() < deadline, "no anchored checkpoint in 60 s"
            await asyncio.sleep(0.2)

    size, note, records = asyncio.run(first())
    proof = _get(f"{server.url}/v1/proofs/inclusion?index={index}&size={size}")["proof"]
    out = copy.deepcopy(receipt)
    out["log"].update(tree_size=size, inclusion=proof)
    out["checkpoint"], out["anchors"] = note, records
    return out


def body_of(note: str) -> str:
    return note[: note.find("\n\n") + 1]


def timestamp_token(pki: Pki, body: str, work: Path) -> str:
    """A DER RFC 3161 token over SHA-256 of `body` from the test TSA (openssl ts), in base64."""
    work.mkdir(parents=True, exist_ok=True)
    (work / "body").write_text(body, encoding="utf-8")
    query = ["openssl", "ts", "-query", "-data", "body", "-sha256", "-cert", "-out", "q.tsq"]
    subprocess.run(query, cwd=work, check=True, capture_output=True)
    reply = [
        "openssl",
        "ts",
        "-reply",
        "-config",
        str(pki.config),
        "-queryfile",
        "q.tsq",
        "-signer",
        str(pki.tsa_cert),
        "-inkey",
        str(pki.tsa_key),
        "-token_out",
        "-out",
        "token.der",
    ]
    subprocess.run(reply, cwd=work, check=True, capture_output=True)
    return base64.b64encode((work / "token.der").read_bytes()).decode()


# -------------------------------------------------------------------------------------------------
# Tampering, one field at a time.


def _flip_hex(h: str, at: int = 0) -> str:
    return h[:at] + ("0" if h[at] != "0" else "1") + h[at + 1 :]


def _note_parts(note: str) -> tuple[str, list[str]]:
    text, block = note.split("\n\n")
    return text + "\n", block[:-1].split("\n")


def _join_note(text: str, lines: list[str]) -> str:
    return text + "\n" + "".join(line + "\n" for line in lines)


def _sig_edit(line: str, edit: Callable[[bytearray], None]) -> str:
    head, _, encoded = line.rpartition(" ")
    raw = bytearray(base64.b64decode(encoded))
    edit(raw)
    return f"{head} {base64.b64encode(bytes(raw)).decode()}"


def _flip_byte(at: int) -> Callable[[bytearray], None]:
    def edit(raw: bytearray) -> None:
        raw[at] ^= 0x01

    return edit


def _flip_last_byte(b64: str) -> str:
    raw = bytearray(base64.b64decode(b64))
    raw[-1] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


def _with(receipt: Receipt, edit: Callable[[Receipt], None]) -> Receipt:
    out = copy.deepcopy(receipt)
    edit(out)
    return out


def _note(edit: Callable[[str, list[str]], tuple[str, list[str]]]) -> Callable[[Receipt], None]:
    def apply(r: Receipt) -> None:
        text, lines = _note_parts(r["checkpoint"])
        r["checkpoint"] = _join_note(*edit(text, lines))

    return apply


def tampered(base: Receipt, anchored_receipt: Receipt, foreign_token: str) -> dict[str, Receipt | str]:
    """Receipts that differ from a valid one in one way each (str: raw JSON text)."""
    log = base["log"]
    witness = "— witness.example/w " + base64.b64encode(os.urandom(4 + 64)).decode()

    def set_log(**kv: Any) -> Callable[[Receipt], None]:
        return lambda r: r["log"].update(kv)

    def set_top(**kv: Any) -> Callable[[Receipt], None]:
        return lambda r: r.update(kv)

    def lines_edit(fn: Callable[[list[str]], list[str]]) -> Callable[[Receipt], None]:
        return _note(lambda text, lines: (text, fn(lines)))

    def text_edit(fn: Callable[[str], str]) -> Callable[[Receipt], None]:
        return _note(lambda text, lines: (fn(text), lines))

    def anchor_edit(i: int, **kv: Any) -> Callable[[Receipt], None]:
        return lambda r: r["anchors"][i].update(kv)

    text_lines = base["checkpoint"].split("\n")
    edits: dict[str, Callable[[Receipt], None]] = {
        "digest-hex": set_top(digest=_flip_hex(base["digest"], 10)),
        "digest-algorithm": set_top(digest="sha256:" + base["digest"].split(":")[1]),
        "entry-digest-byte": set_top(entry=_flip_hex(base["entry"], 8)),
        "entry-salt-byte": set_top(entry=_flip_hex(base["entry"], 80)),
        "entry-short-salt": set_top(entry=base["entry"][:-2]),
        "entry-upper-case": set_top(entry=base["entry"].upper()),
        "index-plus-one": set_log(index=log["index"] + 1),
        "index-is-size": set_log(index=log["tree_size"]),
        "size-plus-one": set_log(tree_size=log["tree_size"] + 1),
        "proof-first-flipped": set_log(inclusion=[_flip_hex(log["inclusion"][0]), *log["inclusion"][1:]]),
        "proof-last-dropped": set_log(inclusion=log["inclusion"][:-1]),
        "proof-extra-hash": set_log(inclusion=[*log["inclusion"], "ab" * 32]),
        "proof-reversed": set_log(inclusion=log["inclusion"][::-1]),
        "proof-too-long": set_log(inclusion=["ab" * 32] * 65),
        "proof-upper-case": set_log(inclusion=[h.upper() for h in log["inclusion"]]),
        "log-origin": set_log(origin="elsewhere.example/log"),
        "log-origin-empty": set_log(origin=""),
        "format-v2": set_top(format="notar.receipt.v2"),
        "negative-index": set_log(index=-1),
        "index-as-string": set_log(index=str(log["index"])),
        "index-true": set_log(index=True),
        "size-u64-max": set_log(tree_size=2**64 - 1),
        "anchors-not-a-list": set_top(anchors={}),
        "anchor-without-type": set_top(anchors=[{"kind": "local"}]),
        "anchor-type-number": set_top(anchors=[{"type": 5}]),
        "anchor-unknown-kind": set_top(anchors=[{"type": "carrier-pigeon", "note": "on its way"}]),
        "extra-top-level-field": set_top(comment="filed with the court"),
        "checkpoint-root-zero": text_edit(
            lambda t: "\n".join([*t.split("\n")[:2], base64.b64encode(bytes(32)).decode(), ""])
        ),
        "checkpoint-size-line": text_edit(
            lambda t: t.replace(f"\n{log['tree_size']}\n", f"\n{log['tree_size'] + 1}\n", 1)
        ),
        "checkpoint-origin-line": text_edit(lambda t: "other.example/log" + t[t.index("\n") :]),
        "checkpoint-size-leading-zero": text_edit(
            lambda t: t.replace(f"\n{log['tree_size']}\n", f"\n0{log['tree_size']}\n", 1)
        ),
        "checkpoint-extension-line": text_edit(lambda t: t + "an extension line\n"),
        "log-signature-removed": lines_edit(lambda ls: ls[1:]),
        "clock-signature-removed": lines_edit(lambda ls: ls[:1]),
        "log-signature-flipped": lines_edit(lambda ls: [_sig_edit(ls[0], _flip_byte(20)), *ls[1:]]),
        "log-key-id-flipped": lines_edit(lambda ls: [_sig_edit(ls[0], _flip_byte(0)), *ls[1:]]),
        "clock-time-changed": lines_edit(lambda ls: [ls[0], _sig_edit(ls[1], _flip_byte(11))]),
        "clock-signature-flipped": lines_edit(lambda ls: [ls[0], _sig_edit(ls[1], _flip_byte(40))]),
        "unknown-witness-signature": lines_edit(lambda ls: [*ls, witness]),
        "duplicate-signature-line": lines_edit(lambda ls: [*ls, ls[0]]),
        "signature-line-no-dash": lines_edit(lambda ls: [ls[0].replace("— ", "- ", 1), *ls[1:]]),
        "no-blank-line": set_top(checkpoint=base["checkpoint"].replace("\n\n", "\n", 1)),
        "trailing-blank-line": set_top(checkpoint=base["checkpoint"] + "\n"),
        "crlf-checkpoint": set_top(checkpoint=base["checkpoint"].replace("\n", "\r\n")),
        "checkpoint-not-text": set_top(checkpoint=text_lines),
    }
    out: dict[str, Receipt | str] = {name: _with(base, edit) for name, edit in edits.items()}

    a_edits: dict[str, Callable[[Receipt], None]] = {
        "local-root": anchor_edit(0, root="00" * 32),
        "local-time": anchor_edit(0, time=anchored_receipt["anchors"][0]["time"] + 1),
        "local-height": anchor_edit(0, height=anchored_receipt["anchors"][0]["height"] + 1),
        "local-extra-field": anchor_edit(0, note="added"),
        "local-size-as-float": anchor_edit(0, tree_size=float(anchored_receipt["log"]["tree_size"])),
        "local-size-wrong": anchor_edit(0, tree_size=anchored_receipt["log"]["tree_size"] + 1),
        "local-sig-not-base64": anchor_edit(0, sig="not base64!"),
        "local-origin": anchor_edit(0, origin="other.example/log"),
        "rfc3161-other-checkpoint": anchor_edit(1, token=foreign_token),
        "rfc3161-garbage": anchor_edit(1, token=base64.b64encode(b"\x30\x03abc").decode()),
        "rfc3161-non-canonical-base64": anchor_edit(1, token="AB=="),
        "rfc3161-bad-signature": anchor_edit(
            1, token=_flip_last_byte(anchored_receipt["anchors"][1]["token"])
        ),
        "evm-root": anchor_edit(2, root="0x" + "11" * 32),
        "evm-size": anchor_edit(2, tree_size=1),
    }
    out.update({f"anchored-{name}": _with(anchored_receipt, edit) for name, edit in a_edits.items()})

    text = json.dumps(base)
    index = f'"index": {log["index"]}'
    assert index in text
    out["index-as-float"] = text.replace(index, f'"index": {log["index"]}.0')
    out["index-exponent"] = text.replace(index, f'"index": {log["index"]}e0')
    out["index-beyond-u64"] = text.replace(index, '"index": 18446744073709551616')
    out["duplicate-key-last-wins"] = text.replace(index, f'"index": 999, {index}')
    out["not-json"] = text[:-1]
    out["bom"] = "\ufeff" + text
    out["nan-in-anchors"] = text.replace('"anchors": []', '"anchors": [{"type": "evm", "tree_size": NaN}]')
    return out


def cli_verdict(receipt: Path, document: Path | None, keys: list[str], ca: Path) -> dict[str, Any]:
    """What `notar verify --json` says, run in this process through the `notar` entry point."""
    args = ["verify", str(receipt), *([str(document)] if document else []), "--json", "--tsa-ca", str(ca)]
    args += [a for k in keys for a in ("--key", k)]
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = notar_main(args)
    if rc == 2:  # unusable input: the command names it and gives no checks
        assert "is not JSON" in err.getvalue(), err.getvalue()
        return {"valid": False, "checks": [["format", False]]}
    doc = json.loads(out.getvalue())
    assert rc == (0 if doc["valid"] else 1)
    return {"valid": doc["valid"], "checks": [[c["name"], c["ok"]] for c in doc["checks"]]}


def test_web_verifier_in_chromium(tmp_path: Path) -> None:
    node = browser_tools()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    rng = random.Random(8)
    docs, corpus_dir = tmp_path / "docs", tmp_path / "corpus"
    docs.mkdir()
    corpus_dir.mkdir()
    markers = []

    def document(path: Path, size: int) -> Path:
        marker = f"notar-web-verifier-marker-{uuid.uuid4().hex}"
        markers.append(marker)
        path.parent.mkdir(parents=True, exist_ok=True)
        head = marker.encode()
        path.write_bytes(head + rng.randbytes(max(size - len(head), 0)))
        return path

    with (
        serve(tmp_path / "main", "web.notar.test/log") as main,
        serve(tmp_path / "other", "other.notar.test/log") as other,
    ):
        sizes = [0, 1, 100, 4096, 65_537, 1_000_000, 4_194_305, 33]
        files = [
            document(docs / f"doc{i}.bin", s) if s else docs / f"doc{i}.bin" for i, s in enumerate(sizes)
        ]
        files[0].write_bytes(b"")
        notar("notarize", str(docs), "--quiet", env=main.env)
        receipts = {f: json.loads(f.with_name(f.name + ".receipt.json").read_text()) for f in files}
        base_file = max(files, key=lambda f: (len(receipts[f]["log"]["inclusion"]), f.stat().st_size > 0))
        base = receipts[base_file]
        assert len(base["log"]["inclusion"]) >= 3 and base["log"]["index"] > 0

        large = document(tmp_path / "large" / "evidence.bin", 40 << 20)
        notar("notarize", str(large), "--quiet", env=main.env)

        sha_doc = document(tmp_path / "sha" / "scan.pdf", 70_000)
        sha_receipt = notarize_digest(
            main, "sha256:" + hashlib.sha256(sha_doc.read_bytes()).hexdigest(), salt=False
        )

        foreign_doc = document(tmp_path / "foreign" / "elsewhere.txt", 500)
        notar("notarize", str(foreign_doc), "--quiet", env=other.env)
        foreign = json.loads(foreign_doc.with_name("elsewhere.txt.receipt.json").read_text())

        pki = make_pki(tmp_path / "pki")
        with_local = anchored(main, base)
        cp_text = body_of(with_local["checkpoint"]).split("\n")
        root_hex = base64.b64decode(cp_text[2]).hex()
        tx_hash = "0x" + "ab" * 32
        full = copy.deepcopy(with_local)
        full["anchors"] = [
            *with_local["anchors"],
            {
                "type": "rfc3161",
                "tsa": "http://tsa.test/",
                "token": timestamp_token(pki, body_of(full["checkpoint"]), tmp_path / "ts1"),
            },
            {
                "type": "evm",
                "chain_id": 31337,
                "contract": "0x" + "12" * 20,
                "tx_hash": tx_hash,
                "block_number": 7,
                "block_hash": "0x" + "cd" * 32,
                "tree_size": full["log"]["tree_size"],
                "root": "0x" + root_hex,
            },
        ]
        foreign_token = timestamp_token(pki, body_of(foreign["checkpoint"]), tmp_path / "ts2")

        flipped = tmp_path / "changed" / base_file.name
        flipped.parent.mkdir()
        data = bytearray(base_file.read_bytes())
        data[len(data) // 2] ^= 0x01
        flipped.write_bytes(bytes(data))

        keys = {
            "main": [main.log_key, main.clock_key],
            "main_log_only": [main.log_key],
            "main_clock_only": [main.clock_key],
            "other": [other.log_key, other.clock_key],
        }
        items: list[dict[str, Any]] = []

        def add(name: str, receipt: Receipt | str, doc: Path | None, key_set: str = "main") -> str:
            path = corpus_dir / f"{name}.json"
            path.write_text(
                receipt if isinstance(receipt, str) else json.dumps(receipt, indent=1), encoding="utf-8"
            )
            items.append(
                {"id": name, "receipt": str(path), "document": str(doc) if doc else None, "keys": key_set}
            )
            return str(path)

        for f in files:
            add(f"valid-{f.stem}", receipts[f], f)
        add("valid-without-document", base, None)
        add("valid-sha256-unsalted", sha_receipt, sha_doc)
        add("valid-anchored-local", with_local, base_file)
        full_path = add("valid-anchored-all-kinds", full, base_file)
        add("valid-log-key-only", base, base_file, "main_log_only")
        add("changed-document", base, flipped)
        add("sha256-changed-document", sha_receipt, flipped)
        add("wrong-keys", base, base_file, "other")
        add("clock-key-only", base, base_file, "main_clock_only")
        add("other-log-receipt", foreign, foreign_doc)
        for name, r in tampered(base, full, foreign_token).items():
            add(name, r, None if name.startswith("entry") or name.startswith("digest") else base_file)
        add("digest-hex-with-document", tampered(base, full, foreign_token)["digest-hex"], base_file)
        clock_bad = _with(base, _note(lambda t, ls: (t, [ls[0], _sig_edit(ls[1], _flip_byte(40))])))
        add("clock-tampered-log-key-only", clock_bad, base_file, "main_log_only")

        page_file = tmp_path / "page" / "verify.html"
        page_file.parent.mkdir()
        with urllib.request.urlopen(main.url + "/verify", timeout=10) as r:
            assert r.headers["Content-Type"].startswith("text/html")
            assert "frame-ancestors 'none'" in r.headers["Content-Security-Policy"]
            page_file.write_bytes(r.read())
        explorer_page = tmp_path / "page" / "verify-explorer.html"
        explorer_page.write_bytes(build_page(explorer=EXPLORER).html)

        def case(receipt: str, doc: Path | None, key_list: list[str] | None = None) -> dict[str, Any]:
            return {"receipt": receipt, "document": str(doc) if doc else None, "keys": key_list}

        by_id = {i["id"]: i["receipt"] for i in items}
        plan = {
            "url": main.url,
            "server_pid": main.proc.pid,
            "page_file": str(page_file),
            "explorer_page_file": str(explorer_page),
            "explorer": EXPLORER,
            "screenshots": str(SCREENSHOTS),
            "results": str(tmp_path / "results.json"),
            "markers": markers,
            "keys": keys,
            "corpus": items,
            "cases": {
                "valid": case(by_id[f"valid-{base_file.stem}"], base_file),
                "changed": case(by_id["changed-document"], flipped),
                "tampered_proof": case(by_id["proof-first-flipped"], base_file),
                "tampered_index": case(by_id["index-plus-one"], base_file),
                "wrong_key": case(by_id["wrong-keys"], base_file, keys["other"]),
                "other_log": case(by_id["other-log-receipt"], foreign_doc),
                "large": case(str(large.with_name("evidence.bin.receipt.json")), large),
                "anchored": {**case(full_path, base_file), "tx_hash": tx_hash},
            },
        }
        (tmp_path / "plan.json").write_text(json.dumps(plan, indent=1))
        run = subprocess.run(
            [node, str(DRIVER), str(tmp_path / "plan.json")],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=1200,
        )
        print(run.stdout, run.stderr, sep="\n")
        assert run.returncode == 0, f"the browser cases failed:\n{run.stdout}\n{run.stderr}"
        assert main.proc.wait(timeout=60) == 0, "the driver stopped the server with SIGTERM"

    page = json.loads((tmp_path / "results.json").read_text())
    cli = {
        i["id"]: cli_verdict(
            Path(i["receipt"]), Path(i["document"]) if i["document"] else None, keys[i["keys"]], pki.ca_cert
        )
        for i in items
    }
    for name, check in KNOWN_DIFFERENCES.items():
        assert page[name]["valid"] and not cli[name]["valid"], (page[name], cli[name])
        assert [c for c in cli[name]["checks"] if not c[1]] == [[check, False]]
        assert [[n, True] if n == check else [n, ok] for n, ok in cli[name]["checks"]] == page[name]["checks"]
    differ = {k: (page[k], cli[k]) for k in cli if page[k] != cli[k] and k not in KNOWN_DIFFERENCES}
    assert not differ, "the page and notar verify disagree:\n" + "\n".join(
        f"{k}: page {p} / cli {c}" for k, (p, c) in differ.items()
    )
    valid = [k for k, v in cli.items() if v["valid"]]
    assert len(items) >= 50 and len(valid) >= 12 and len(items) - len(valid) >= 50, (len(items), valid)
    expected_valid = {f"valid-{f.stem}" for f in files} | {
        "valid-without-document",
        "valid-sha256-unsalted",
        "valid-anchored-local",
        "valid-anchored-all-kinds",
        "valid-log-key-only",
        "unknown-witness-signature",
        "anchor-unknown-kind",
        "extra-top-level-field",
        "duplicate-key-last-wins",
        "clock-tampered-log-key-only",
    }
    assert set(valid) == expected_valid, set(valid) ^ expected_valid

    # The installed `notar` executable agrees too, on a few of them (each start costs seconds).
    for name in ("valid-without-document", "changed-document", "wrong-keys"):
        item = next(i for i in items if i["id"] == name)
        args = [NOTAR, "verify", item["receipt"], *([item["document"]] if item["document"] else []), "--json"]
        args += [a for k in keys[item["keys"]] for a in ("--key", k)]
        done = subprocess.run(args, capture_output=True, text=True, timeout=120)
        doc = json.loads(done.stdout)
        assert [[c["name"], c["ok"]] for c in doc["checks"]] == page[name]["checks"], name
