"""DESIGN rule 1: dependencies point services -> storage -> merkle; merkle and storage read no environment."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = {
    "merkle": {"aiohttp", "aiobotocore", "botocore", "rocksdict", "asyncio", "storage", "services", "os"},
    "storage": {"services"},
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


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


def test_the_checker_itself_catches_violations(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import os\nfrom aiohttp import web\nx = os.environ['A']\n")
    assert {"os", "aiohttp"} <= _imports(bad)
    assert _reads_environ(bad)
