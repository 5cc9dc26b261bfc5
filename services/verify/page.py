"""GET /verify: the web verifier (SPEC §6), one self-contained HTML page built once at start-up.

The page is the template `static/verify.html` with its style and its script inlined. The script is
one bundle of ES modules: `vendor/noble.js` (pinned @noble/hashes and @noble/curves, see
`static/vendor/README.md`), the checks, a port of merkle/ (`json.js` strict JSON and bytes, `log.js`
proofs, notes, keys and checkpoints, `timestamp.js` RFC 3161 tokens, `trust.js` key histories and
witness policies, `receipt.js` the receipt and its verdict, `scitt.js` SCITT transparent statements
and COSE receipts), and `page.js` (the form and the verdict). The modules import one another by
name (`MODULES`; tests/services/verify/receipt_node.mjs maps the same names under Node); `bundle`
links them here into one inline script, each module in its own function scope, so that the very
same bytes work served by notar, after the server is gone, and saved and opened straight from disk.
Its Content-Security-Policy lets only that one script run, by its hash — no `data:` or other URL
may hold a script, so markup injected into the page cannot bring its own — and lets the page
connect only to its own origin (for `GET v1/keys`): the document the clerk chooses is hashed in
the browser, never sent.
"""

from __future__ import annotations

import base64
import hashlib
import html
import re
from collections.abc import Awaitable, Callable, Mapping
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
maps the same names); `page.js`, the entry, imports them and is imported by none."""
ENTRY = "page.js"
_NAMES = r"\{([^{}]*)\}"
_IMPORT = re.compile(r'^import ' + _NAMES + r' from "([a-z0-9-]+)";[ \t]*$', re.M)
_REEXPORT = re.compile(r'^export ' + _NAMES + r' from "([a-z0-9-]+)";[ \t]*$', re.M)
_EXPORT_LIST = re.compile(r'^export ' + _NAMES + r';?[ \t]*$', re.M)
_EXPORT_DECL = re.compile(
    r"^export ((?:async )?function\*? ?|class |const |let |var )([A-Za-z_$][\w$]*)", re.M
)
_LEFT = re.compile(r"^[ \t]*(?:import|export)\b(?![ \t]*[(.])", re.M)
_EXPLORER = re.compile(r"https?://[^\s\"'<>]+")


@dataclass(frozen=True)
class Page:
    html: bytes
    csp: str


def _static(name: str) -> str:
    return files("services.verify").joinpath("static", *name.split("/")).read_text(encoding="utf-8")


def _sha256_source(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii") + "'"


def _pairs(names: str, where: str) -> list[tuple[str, str]]:
    """`a, b as c` → [(a, a), (b, c)]: (the name in the module, the name outside it)."""
    out = []
    for part in names.replace("\n", " ").split(","):
        words = part.split()
        if not words:
            continue
        if len(words) == 1:
            out.append((words[0], words[0]))
        elif len(words) == 3 and words[1] == "as":
            out.append((words[0], words[2]))
        else:
            raise ValueError(f"{where}: cannot bundle the import or export {part.strip()!r}")
    return out


def _var(name: str) -> str:
    return "__" + name.replace("-", "_")


def _link(path: str, source: str) -> tuple[str, list[str], list[str]]:
    """One module's body with its imports and exports rewritten for the bundle, the modules it
    imports, and its exports as object members (`name: local`)."""
    used: list[str] = []
    exports: list[str] = []

    def known(name: str) -> str:
        if name not in MODULES:
            raise ValueError(f"{path} imports {name!r}, which is not one of the page's MODULES")
        if name not in used:
            used.append(name)
        return _var(name)

    def imported(m: re.Match[str]) -> str:
        names = ", ".join(f"{inside}: {outside}" for inside, outside in _pairs(m.group(1), path))
        return f"const {{ {names} }} = {known(m.group(2))};"

    def reexported(m: re.Match[str]) -> str:
        module = known(m.group(2))
        exports.extend(f"{outside}: {module}.{inside}" for inside, outside in _pairs(m.group(1), path))
        return ""

    def listed(m: re.Match[str]) -> str:
        exports.extend(f"{outside}: {inside}" for inside, outside in _pairs(m.group(1), path))
        return ""

    def declared(m: re.Match[str]) -> str:
        exports.append(m.group(2))
        return m.group(1) + m.group(2)

    body = _IMPORT.sub(imported, source)
    body = _REEXPORT.sub(reexported, body)
    body = _EXPORT_LIST.sub(listed, body)
    body = _EXPORT_DECL.sub(declared, body)
    left = _LEFT.search(body)
    if left is not None:
        line = body[left.start() : body.find("\n", left.start())]
        raise ValueError(f"{path}: cannot bundle {line.strip()[:80]!r} (see services/verify/page.py)")
    return body, used, exports


def bundle(sources: Mapping[str, str], entry: str) -> str:
    """The page's one script: each module of `sources` (name → source) that `entry` needs, in an
    order where a module comes after those it imports, as `const __name = (() => {…; return
    {exports}})();`, then `entry` in a block. A module may use `import {a, b as c} from "name";`,
    `export {…} from "name";`, `export {…};` and `export` before a declaration; anything else
    named import or export is refused here (ValueError), not left for the browser to reject."""
    linked = {name: _link(name, source) for name, source in sources.items()}
    order: list[str] = []

    def visit(name: str, path: tuple[str, ...]) -> None:
        if name in path:
            raise ValueError(f"the page's modules import one another in a cycle: {' -> '.join(path)}")
        if name not in order:
            for dependency in linked[name][1]:
                visit(dependency, (*path, name))
            order.append(name)

    body, needs, _ = linked.pop(entry)
    for name in needs:
        visit(name, (entry,))
    parts = []
    for name in order:
        body_of, _, exports = linked[name]
        members = ", ".join(exports)
        scope = f"(() => {{\n{body_of}\nreturn Object.freeze({{ {members} }});\n}})()"
        parts.append(f"const {_var(name)} = {scope};")
    return "\n".join([*parts, "{\n" + body + "\n}"]) + "\n"


def build_page(*, explorer: str | None = None) -> Page:
    """The page's bytes and its CSP; `explorer` is a block explorer's base URL for EVM
    transactions (`<explorer>/tx/<hash>`), ignored unless it is an http(s) URL."""
    style = _static("verify.css")
    script = bundle({name: _static(path) for name, path in MODULES.items()} | {ENTRY: _static(ENTRY)}, ENTRY)
    for name, text, end in (("style", style, "</style"), ("script", script, "</script")):
        if end in text.lower():
            raise ValueError(f"the page's inline {name} must not contain {end}")
    csp = "; ".join(
        [
            "default-src 'none'",
            f"script-src {_sha256_source(script)}",
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
