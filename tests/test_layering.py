"""DESIGN rule 1: dependencies point services -> storage -> merkle; merkle and storage read no environment.

Inside services: ingest, verify, scitt and common share only services.model (types),
services.internal (the anchor's wire contract and client) and services.published (the bucket layout
and its read side), never one another's or the anchor's modules; `notar verify` loads none of the
server."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = {
    "merkle": {"aiohttp", "aiobotocore", "botocore", "rocksdict", "asyncio", "storage", "services", "os"},
    "storage": {"services"},
}
SERVICES = ("services.anchor", "services.ingest", "services.verify", "services.scitt", "services.cli")
FORBIDDEN_MODULES = {  # under this folder (or file) -> no import of these modules or their submodules
    "services/ingest": ("services.anchor", "services.scitt"),
    "services/verify": ("services.ingest", "services.anchor", "services.scitt"),
    "services/scitt": ("services.ingest", "services.anchor", "services.verify"),
    "services/common": SERVICES,
    "services/internal": SERVICES,
    "services/published": SERVICES,
    "services/witness": SERVICES,
    "services/model.py": ("services",),
}
SERVER_MODULES = (
    "aiohttp.web",
    "services.anchor",
    "services.ingest",
    "services.verify",
    "services.common.http_server",
    "services.common.telemetry",
    "storage.rocks",
    "rocksdict",
    "storage.s3",
    "aiobotocore",
)


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def _modules(path: Path) -> set[str]:
    """Every absolute module an import in `path` names, anywhere in the file (`from a import b`
    names `a` and `a.b`: b may be a submodule)."""
    tree = ast.parse(path.read_text(), str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return names


def _within(name: str, modules: Iterable[str]) -> bool:
    return any(name == m or name.startswith(m + ".") for m in modules)


def _violations(path: Path, forbidden: Iterable[str]) -> list[str]:
    return sorted(m for m in _modules(path) if _within(m, tuple(forbidden)))


def _sources(where: str) -> list[Path]:
    target = ROOT / where
    return [target] if target.suffix == ".py" else sorted(target.rglob("*.py"))


def _reads_environ(path: Path) -> bool:
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in {"environ", "getenv", "environb"}:
            return True
        if isinstance(node, ast.Name) and node.id in {"environ", "getenv"}:
            return True
    return False


def test_packages_import_only_downwards() -> None:
    for package, forbidden in FORBIDDEN.items():
        files = sorted((ROOT / package).rglob("*.py"))
        assert files, f"no sources found under {package}/"
        for f in files:
            bad = _imports(f) & forbidden
            assert not bad, f"{f.relative_to(ROOT)} imports {sorted(bad)}"


def test_merkle_and_storage_read_no_environment() -> None:
    for package in ("merkle", "storage"):
        for f in sorted((ROOT / package).rglob("*.py")):
            assert not _reads_environ(f), f"{f.relative_to(ROOT)} reads the environment"


def test_services_share_only_model_internal_and_published() -> None:
    for where, forbidden in FORBIDDEN_MODULES.items():
        files = _sources(where)
        assert files, f"no sources found at {where}"
        for f in files:
            bad = _violations(f, forbidden)
            assert not bad, f"{f.relative_to(ROOT)} imports {bad}"


def test_model_imports_only_merkle_storage_and_the_standard_library() -> None:
    allowed = {"merkle", "storage", *sys.stdlib_module_names}
    bad = _imports(ROOT / "services/model.py") - allowed
    assert not bad, f"services/model.py imports {sorted(bad)}"


def test_only_the_cli_imports_the_cli() -> None:
    for package in ("services", "storage", "merkle", "loadtest"):
        for f in sorted((ROOT / package).rglob("*.py")):
            if (ROOT / "services/cli") in f.parents:
                continue
            bad = _violations(f, ["services.cli"])
            assert not bad, f"{f.relative_to(ROOT)} imports {bad}"


def _loaded_after(code: str) -> list[str]:
    """The server modules loaded by a fresh interpreter once it has run `code`."""
    probe = f"{code}\nimport sys\nprint('\\n'.join(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True, timeout=120
    ).stdout
    return [m for m in out.split() if _within(m, SERVER_MODULES)]


def test_notar_verify_loads_none_of_the_server() -> None:
    assert _loaded_after("import services.cli.verify") == []
    help_run = (
        "import contextlib, io\nfrom services.cli import main\n"
        "with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()) as out:\n"
        "    main(['verify', '--help'])\n"
        "assert 'RECEIPT' in out.getvalue()"
    )
    assert _loaded_after(help_run) == []
    assert "services.anchor.app" in _loaded_after("import services.cli.serve")  # the probe sees imports


def test_the_checker_itself_catches_violations(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import os\nfrom aiohttp import web\nx = os.environ['A']\n")
    assert {"os", "aiohttp"} <= _imports(bad)
    assert _reads_environ(bad)
    inner = tmp_path / "inner.py"
    inner.write_text(
        "from services import ingest\n"
        "def f() -> None:\n    from services.anchor.sequencer import Sequencer\n"
        "import services.verify.app as v\nfrom services.anchors import x\n"
    )
    anchor = ["services.anchor.sequencer", "services.anchor.sequencer.Sequencer"]
    assert _violations(inner, ["services.anchor"]) == anchor  # not services.anchors
    assert _violations(inner, ["services.ingest"]) == ["services.ingest"]
    assert _violations(inner, SERVICES) == [*anchor, "services.ingest", "services.verify.app"]
