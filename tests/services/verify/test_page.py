"""GET /verify without a browser: one self-contained page, a CSP that allows exactly its inline
scripts, the explorer setting, and the vendored noble.js being what the pinned packages build."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from services.verify.page import ENTRY, MODULES, build_page, bundle, verify_page
from tests.needs import in_ci, missing
from tests.services.verify.live import REPO

VENDOR = REPO / "services" / "verify" / "static" / "vendor"


def _between(text: str, start: str, end: str = "</script>") -> str:
    i = text.index(start) + len(start)
    return text[i : text.index(end, i)]


def _hash(source: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(source.encode()).digest()).decode() + "'"


def test_the_page_is_one_file_whose_csp_allows_exactly_its_inline_code() -> None:
    page = build_page()
    text = page.html.decode("utf-8")
    assert "{{" not in text
    assert not re.search(r"<script[^>]*\ssrc=", text), "no script is loaded from elsewhere"
    assert not re.search(r"<link[^>]*stylesheet", text)
    assert "importmap" not in text
    hrefs = re.findall(r'\shref="([^"]*)"', text)
    assert hrefs == ["data:,", "verify"], hrefs
    assert text.count("<script") == 1, "one script: the bundle"
    module = _between(text, '<script type="module">')
    style = _between(text, "<style>", "</style>")
    directives = dict(d.split(" ", 1) for d in page.csp.split("; "))
    assert directives["script-src"] == _hash(module), "only the bundle, by its hash: no data: script"
    assert "data:" not in directives["script-src"] and "blob:" not in page.csp
    assert directives["style-src"] == _hash(style)
    assert directives["connect-src"] == "'self'" and directives["default-src"] == "'none'"
    assert "unsafe-inline" not in page.csp and "unsafe-eval" not in page.csp
    assert page.csp.replace("'", "&#x27;") in text, "the same policy is in the page, for copies on disk"
    for name, path in {**MODULES, "page": ENTRY}.items():
        source = (VENDOR.parent / path).read_text(encoding="utf-8")
        imported = set(re.findall(r'from "(notar-[a-z0-9]+)"', source))
        assert imported <= set(MODULES), f"{path} imports {imported - set(MODULES)}: not in MODULES"
        lines = [
            line for line in source.splitlines() if not re.match(r"(import|export) |\s*[\w$]+,?$|\};?$", line)
        ]
        missing = [line for line in lines if line not in module]
        assert not missing, f"{name}: {missing[:3]}"  # every line of code is in the bundle
    assert "MIT License" in module.splitlines()[4], "noble.js keeps its license header"


def test_the_bundle_links_modules_by_name_and_refuses_what_it_cannot_link(tmp_path: Path) -> None:
    sources = {
        "notar-a": "export const one = 1;\nexport function two() { return 2; }\nconst three = 3;\n"
        "export {\n  three as THREE\n};\n",
        "notar-b": 'import { one, two as deux } from "notar-a";\nexport { THREE } from "notar-a";\n'
        "export const sum = () => one + deux();\n",
        "main.js": 'import { sum, THREE } from "notar-b";\nglobalThis.out = [sum(), THREE];\n',
    }
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("services.verify.page.MODULES", {"notar-a": "a.js", "notar-b": "b.js"})
        script = bundle(sources, "main.js")
        assert script.index("const __notar_a") < script.index("const __notar_b")
        node = shutil.which("node")
        if node is not None or in_ci():
            assert node is not None, "node is needed in CI"
            (tmp_path / "bundle.mjs").write_text(script + "console.log(JSON.stringify(globalThis.out));\n")
            r = subprocess.run(
                [node, str(tmp_path / "bundle.mjs")], capture_output=True, text=True, timeout=60
            )
            assert r.returncode == 0 and json.loads(r.stdout) == [3, 3], r.stdout + r.stderr
        refused = {
            "export default": "export default 1;\n",
            "import * as": 'import * as a from "notar-a";\n',
            "not one of the page's MODULES": 'import { x } from "elsewhere";\n',
            "cycle": 'import { sum } from "notar-b";\n',
        }
        for why, source in refused.items():
            bad = (
                {**sources, "notar-a": source + sources["notar-a"]}
                if why == "cycle"
                else {**sources, "main.js": source + sources["main.js"]}
            )
            with pytest.raises(
                ValueError, match=re.escape(why) if why != "export default" else "cannot bundle"
            ):
                bundle(bad, "main.js")


@pytest.mark.parametrize(
    ("setting", "attribute"),
    [
        (None, ""),
        ("https://etherscan.io/", "https://etherscan.io"),
        ("http://explorer.internal:4000/chain", "http://explorer.internal:4000/chain"),
        ("javascript:alert(1)", ""),
        ('https://x.example/"><script>alert(1)</script>', ""),
    ],
)
def test_the_block_explorer_setting_fills_a_data_attribute(setting: str | None, attribute: str) -> None:
    text = build_page(explorer=setting).html.decode()
    assert f'<main id="app" data-explorer="{attribute}">' in text


async def test_the_route_serves_the_page_with_its_policy() -> None:
    app = web.Application()
    app.router.add_get("/verify", verify_page(explorer=None))
    async with TestClient(TestServer(app)) as client:
        r = await client.get("/verify")
        assert r.status == 200 and r.content_type == "text/html"
        assert r.headers["Content-Security-Policy"].endswith("; frame-ancestors 'none'")
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        assert await r.read() == build_page().html


def test_vendored_noble_is_what_the_pinned_packages_build() -> None:
    node = shutil.which("node")
    if node is None or not (REPO / "node_modules" / "esbuild").is_dir():
        message = "node and node_modules (npm ci) are needed to rebuild noble.js"
        missing(message)
    r = subprocess.run(
        [node, str(VENDOR / "build.mjs"), "--check"], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0, r.stdout + r.stderr


def test_vendored_files_name_their_source_and_license() -> None:
    head = (VENDOR / "noble.js").read_text(encoding="utf-8").splitlines()[:5]
    assert "@noble/hashes@" in head[1] and "@noble/curves@" in head[2]
    assert "Permission is hereby granted" in (VENDOR / "LICENSE-noble").read_text()
    assert "build.mjs" in (VENDOR / "README.md").read_text()
    lock = (REPO / "package-lock.json").read_text()
    for line in head[1:3]:
        integrity = re.search(r"\((sha512-[^)]+)\)", line)
        assert integrity is not None and integrity.group(1) in lock


def test_static_files_are_package_data() -> None:
    text = (REPO / "pyproject.toml").read_text()
    for pattern in ("static/*.html", "static/*.css", "static/*.js", "static/vendor/noble.js"):
        assert f'"{pattern}"' in text
    assert Path(REPO / "services" / "verify" / "static" / "verify.html").is_file()
