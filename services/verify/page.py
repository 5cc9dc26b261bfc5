"""GET /verify: the web verifier (SPEC §6), one self-contained HTML page built once at start-up.

The page is the template `static/verify.html` with its style and its ES modules inlined:
`vendor/noble.js` (pinned @noble/hashes and @noble/curves, see `static/vendor/README.md`), the
checks, a port of merkle/ (`json.js` strict JSON and bytes, `log.js` proofs, notes, keys and
checkpoints, `timestamp.js` RFC 3161 tokens, `trust.js` key histories and witness policies,
`receipt.js` the receipt and its verdict, `scitt.js` SCITT transparent statements and COSE
receipts), and
`page.js` (the form and the verdict). All but the last are imported by name through an import map
of `data:` URLs (`MODULES`), so the very same bytes work
served by notar, after the server is gone, and saved and opened straight from disk. Its
Content-Security-Policy lets only those inline scripts run and the page connect only to its own
origin (for `GET v1/keys`): the document the clerk chooses is hashed in the browser, never sent.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib.resources import files

from aiohttp import web

_MARKER = re.compile(r"\{\{([A-Z]+)\}\}")
MODULES = {
    "notar-noble": "vendor/noble.js",
    "notar-json": "json.js",
    "notar-log": "log.js",
    "notar-der": "der.js",
    "notar-x509": "x509.js",
    "notar-timestamp": "timestamp.js",
    "notar-trust": "trust.js",
    "notar-receipt": "receipt.js",
    "notar-timeline": "timeline.js",
    "notar-scitt": "scitt.js",
}
"""The page's modules by the names they import one another by (tests/services/verify/receipt_node.mjs
maps the same names)."""
_EXPLORER = re.compile(r"https?://[^\s\"'<>]+")


@dataclass(frozen=True)
class Page:
    html: bytes
    csp: str


def _static(name: str) -> str:
    return files("services.verify").joinpath("static", *name.split("/")).read_text(encoding="utf-8")


def _sha256_source(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii") + "'"


def _data_url(source: str) -> str:
    return "data:text/javascript;base64," + base64.b64encode(source.encode("utf-8")).decode("ascii")


def build_page(*, explorer: str | None = None) -> Page:
    """The page's bytes and its CSP; `explorer` is a block explorer's base URL for EVM
    transactions (`<explorer>/tx/<hash>`), ignored unless it is an http(s) URL."""
    style, script = _static("verify.css"), _static("page.js")
    importmap = json.dumps(
        {"imports": {name: _data_url(_static(path)) for name, path in MODULES.items()}},
        separators=(",", ":"),
    )
    for name, text, end in (("style", style, "</style"), ("script", script, "</script")):
        if end in text.lower():
            raise ValueError(f"the page's inline {name} must not contain {end}")
    csp = "; ".join(
        [
            "default-src 'none'",
            f"script-src {_sha256_source(importmap)} {_sha256_source(script)} data:",
            f"style-src {_sha256_source(style)}",
            "img-src data:",
            "connect-src 'self'",
            "base-uri 'none'",
            "form-action 'none'",
        ]
    )
    url = explorer if explorer and _EXPLORER.fullmatch(explorer) else ""
    values = {
        "CSP": html.escape(csp),
        "STYLE": style,
        "IMPORTMAP": importmap,
        "SCRIPT": script,
        "EXPLORER": html.escape(url.rstrip("/")),
    }
    template = _static("verify.html")
    found = _MARKER.findall(template)
    if sorted(found) != sorted(values):
        raise ValueError(f"verify.html must hold each of {sorted(values)} once, found {found}")
    page = _MARKER.sub(lambda m: values[m.group(1)], template)
    return Page(page.encode("utf-8"), csp)


def verify_page(*, explorer: str | None) -> Callable[[web.Request], Awaitable[web.Response]]:
    """The GET /verify handler, its page built now, linking to the block explorer `explorer`
    (EVM_EXPLORER_URL) when given."""
    page = build_page(explorer=explorer)
    headers = {
        "Content-Security-Policy": page.csp + "; frame-ancestors 'none'",
        "Cache-Control": "no-cache",
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
    }

    async def get_verify(request: web.Request) -> web.Response:
        return web.Response(body=page.html, content_type="text/html", charset="utf-8", headers=headers)

    return get_verify
