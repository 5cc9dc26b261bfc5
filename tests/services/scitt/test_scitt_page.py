"""The web page checks SCITT transparent statements offline (services/verify/static/scitt.js): under
Node, on statements registered with a real `notar serve`, their receipts, tampered copies and
fuzz-mutated statements, each check with the name and status that merkle.transparent (what `notar
verify` reports) gives; and in Chromium, through the page itself, as a clerk would."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cbor2
import pytest

from loadtest.fuzz_mutations import mutated_statements
from merkle.note import Signer, Verifier
from merkle.scitt import parse_statement
from merkle.transparent import verify_transparent
from tests.fuzz.conftest import sample
from tests.services.scitt.serving import Served, get, post, serve
from tests.services.scitt.thirdparty import statement
from tests.services.verify.live import REPO, browser_tools
from tests.services.verify.test_receipt_js import page_verdicts

PAGE_DRIVER = Path(__file__).with_name("page_scitt.mjs")
MUTATED = 150


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    yield from serve(tmp_path_factory.mktemp("scitt-page"))


def with_receipts(signed: bytes, receipts: list[bytes]) -> bytes:
    protected, _, payload, signature = cbor2.loads(signed).value
    return bytes(cbor2.dumps(cbor2.CBORTag(18, [protected, {394: receipts}, payload, signature])))


async def cases(s: Served, work: Path) -> tuple[dict[str, dict[str, Any]], str, set[str]]:
    """Items for receipt_node.mjs ({id: {statement, receipts}}), the log's verifier key, and the
    ids that must be valid."""
    signed = {alg: statement(s.keys[alg], b'{"page": "' + alg.encode() + b'"}') for alg in ("ES256", "EdDSA")}
    receipts = {}
    for alg, body in signed.items():
        r = await post(s, body)
        assert r.status == 201, await r.read()
        receipts[alg] = await r.read()
    keys = await get(s, "/v1/keys")
    vkey = json.loads(await keys.read())["logs"][0]["log"]
    a, b = signed["ES256"], signed["EdDSA"]
    ra, rb = receipts["ES256"], receipts["EdDSA"]
    protected, _, _, signature = cbor2.loads(a).value
    flipped = bytearray(ra)
    flipped[-1] ^= 1
    files: dict[str, tuple[bytes, list[bytes]]] = {
        "embedded": (with_receipts(a, [ra]), []),
        "apart": (a, [ra]),
        "two receipts, one of another statement": (with_receipts(a, [ra, rb]), []),
        "receipt of another statement": (b, [ra]),
        "payload changed": (
            with_receipts(bytes(cbor2.dumps(cbor2.CBORTag(18, [protected, {}, b"{}", signature]))), [ra]),
            [],
        ),
        "receipt signature changed": (a, [bytes(flipped)]),
        "no receipt": (a, []),
        "receipt not CBOR": (a, [b"{}"]),
        "not a statement": (b'{"format": "notar.receipt.v2"}', [ra]),
    }
    transparent = [with_receipts(a, [ra]), with_receipts(b, [rb])]
    for k, data in enumerate(sample(mutated_statements(transparent), MUTATED)):
        files[f"mutated {k}"] = (data, [])
    items = {}
    for n, (name, (body, given)) in enumerate(files.items()):
        path = work / f"{n}.cose"
        path.write_bytes(body)
        paths = []
        for m, receipt in enumerate(given):
            paths.append(work / f"{n}-{m}.receipt.cose")
            paths[-1].write_bytes(receipt)
        items[name] = {"statement": str(path), "receipts": [str(p) for p in paths]}
    return items, vkey, {"embedded", "apart"}


def disagreements(listed: list[dict[str, Any]], page: dict[str, Any]) -> dict[str, str]:
    """Where the page's verdict differs from merkle.transparent's (what `notar verify` reports)."""
    differ = {}
    for item in listed:
        receipts = [Path(p).read_bytes() for p in item["receipts"]]
        keys = [Verifier.from_key(k) for k in item["keys"]]
        ours = verify_transparent(Path(item["statement"]).read_bytes(), log_keys=keys, receipts=receipts)
        expected = {"valid": ours.valid, "checks": [[c.name, c.status.value] for c in ours.checks]}
        got = {"valid": page[item["id"]]["valid"], "checks": page[item["id"]]["checks"]}
        if got != expected:
            differ[item["id"]] = f"page {got}, notar verify {expected} ({page[item['id']]['detail']})"
    return differ


def entry_of_file(path: str) -> bytes:
    return parse_statement(Path(path).read_bytes()).entry


async def test_the_page_and_notar_verify_agree_on_transparent_statements(
    served: Served, tmp_path: Path
) -> None:
    items, vkey, valid = await cases(served, tmp_path)
    other = Signer.generate("scitt.notar.test/log").verifier().to_key()
    listed = [{"id": k, **v, "keys": [vkey]} for k, v in items.items()]
    listed += [{"id": f"{k} (other key)", **v, "keys": [other]} for k, v in items.items() if k in valid]
    page = page_verdicts(listed, tmp_path)
    differ = disagreements(listed, page)
    assert not differ, "the page and notar verify disagree:\n" + "\n".join(
        f"{k}: {w}" for k, w in differ.items()
    )
    assert {k for k, v in page.items() if v["valid"] and not k.startswith("mutated")} == valid
    assert page["receipt of another statement"]["checks"][-1] == ["receipt 1", "failed"]
    # A mutated statement holds only when what the issuer signed is untouched (its entry is one of
    # the registered statements'): the edit was outside the protected header, payload and signature.
    registered = {entry_of_file(items[k]["statement"]) for k in ("embedded", "receipt of another statement")}
    for k, v in page.items():
        if k.startswith("mutated") and v["valid"]:
            assert entry_of_file(items[k]["statement"]) in registered, k
    assert sum(1 for k, v in page.items() if k.startswith("mutated") and not v["valid"]) > MUTATED // 3


def in_chromium(node: str, url: str, work: Path) -> dict[str, Any]:
    """The page's verdicts on the files in `work`, by page_scitt.mjs."""
    (work / "plan.json").write_text(json.dumps({"url": url, "dir": str(work)}))
    run = subprocess.run(
        [node, str(PAGE_DRIVER), str(work / "plan.json")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    results: dict[str, Any] = json.loads((work / "results.json").read_text())
    return results


async def test_the_page_checks_a_transparent_statement_in_chromium(served: Served, tmp_path: Path) -> None:
    node = browser_tools()
    signed = statement(served.keys["ES384"], b'{"browser": true}')
    r = await post(served, signed)
    assert r.status == 201
    receipt = await r.read()
    protected, _, _, signature = cbor2.loads(signed).value
    files = {
        "embedded": with_receipts(signed, [receipt]),
        "statement": signed,
        "receipt": receipt,
        "tampered": with_receipts(
            bytes(cbor2.dumps(cbor2.CBORTag(18, [protected, {}, b"[]", signature]))), [receipt]
        ),
    }
    for name, data in files.items():
        (tmp_path / f"{name}.cose").write_bytes(data)
    results = in_chromium(node, served.url + "/verify", tmp_path)
    assert results["embedded"]["valid"] == "true" and results["apart"]["valid"] == "true", results
    assert "registered as entry" in results["embedded"]["text"]
    assert results["tampered"]["valid"] == "false" and results["tampered"]["failed"] == ["receipt 1"], results
    assert results["embedded"]["checks"] == {
        "format": "ok",
        "issuer signature": "not checked",
        "receipt 1": "ok",
    }
