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

from services.verify.page import MODULES, build_page, verify_page
from tests.services.verify.live import REPO, _in_ci

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
    hrefs = re.findall(r'\shref="([^"]*)"', text)
    assert hrefs == ["data:,", "verify"], hrefs
    importmap = _between(text, '<script type="importmap">')
    module = _between(text, '<script type="module">')
    style = _between(text, "<style>", "</style>")
    assert _hash(importmap) in page.csp and _hash(module) in page.csp and _hash(style) in page.csp
    assert "connect-src 'self'" in page.csp and "default-src 'none'" in page.csp
    assert "unsafe-inline" not in page.csp and "unsafe-eval" not in page.csp
    assert page.csp.replace("'", "&#x27;") in text, "the same policy is in the page, for copies on disk"
    modules = json.loads(importmap)["imports"]
    assert set(modules) == set(MODULES) >= {"notar-noble", "notar-receipt"}
    for name, path in MODULES.items():
        source = base64.b64decode(modules[name].removeprefix("data:text/javascript;base64,")).decode()
        assert source == (VENDOR.parent / path).read_text(encoding="utf-8")
        imported = set(re.findall(r'from "(notar-[a-z0-9]+)"', source))
        assert imported <= set(MODULES), f"{path} imports {imported - set(MODULES)}: not in the import map"
    noble = base64.b64decode(modules["notar-noble"].removeprefix("data:text/javascript;base64,")).decode()
    assert noble == (VENDOR / "noble.js").read_text(encoding="utf-8")
    assert "MIT License" in noble.splitlines()[3]


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
        if _in_ci():
            pytest.fail(message)
        pytest.skip(message)
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
