"""Rendering the kustomize overlays of k8s/ with `kubectl kustomize`, once per overlay, and once
more for each variant: an overlay on top of a shipped one, as k8s/README.md tells ops to write
(the dev overlay with `components/shards` and another NOTAR_SHARDS)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.needs import missing

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
OVERLAYS = sorted(p.name for p in (K8S / "overlays").iterdir() if (p / "kustomization.yaml").is_file())
# name → (the shipped overlay it builds on, the components it adds, the settings it merges)
VARIANTS = {"dev-3-shards": ("dev", ("shards",), {"NOTAR_SHARDS": "3"})}


def tool(name: str) -> str:
    """The command `name` next to this interpreter (the venv's bin/, where `scripts/install
    --test` puts kubectl and kubernetes-validate), else on PATH. Missing: skip, but fail in CI."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.is_file() and os.access(beside, os.X_OK) else shutil.which(name)
    if found is None:
        missing(f"{name} is not installed (scripts/install --test installs it)")
    return found


def expand(value: str, env: dict[str, str]) -> str:
    """Kubernetes' `$(NAME)` references to variables defined before (`$$` escapes one)."""
    reference = r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)"
    return re.sub(reference, lambda m: env.get(m[1], m[0]) if m[1] else "$", value)


@dataclass(frozen=True)
class Rendered:
    overlay: str
    path: Path  # the rendered multi-document YAML
    docs: list[dict[str, Any]]

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [d for d in self.docs if d["kind"] == kind]

    def named(self, kind: str, name: str) -> dict[str, Any]:
        found = [d for d in self.of_kind(kind) if d["metadata"]["name"] == name]
        assert len(found) == 1, f"{self.overlay}: {len(found)} {kind} named {name}"
        return found[0]


def variant(name: str, where: Path) -> Path:
    """The kustomization of variant `name` (VARIANTS), written in `where`."""
    overlay, components, settings = VARIANTS[name]

    def at(path: Path) -> str:  # kustomize refuses absolute paths
        return os.path.relpath(path, where)

    lines = [
        "apiVersion: kustomize.config.k8s.io/v1beta1",
        "kind: Kustomization",
        f"resources: [{at(K8S / 'overlays' / overlay)}]",
        f"components: [{', '.join(at(K8S / 'components' / c) for c in components)}]",
        "configMapGenerator:",
        "  - name: notar-settings",
        "    behavior: merge",
        f"    literals: [{', '.join(f'{k}={v}' for k, v in settings.items())}]",
    ]
    where.mkdir(parents=True, exist_ok=True)
    (where / "kustomization.yaml").write_text("\n".join(lines) + "\n")
    return where


def render(overlay: str, out: Path) -> Rendered:
    kubectl = tool("kubectl")
    source = variant(overlay, out.with_suffix("")) if overlay in VARIANTS else K8S / "overlays" / overlay
    run = subprocess.run([kubectl, "kustomize", str(source)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, f"kubectl kustomize {overlay} failed:\n{run.stderr}"
    out.write_text(run.stdout)
    docs = [d for d in yaml.safe_load_all(run.stdout) if d]
    assert docs, f"{overlay} renders nothing"
    return Rendered(overlay, out, docs)


@pytest.fixture(scope="session", params=[*OVERLAYS, *VARIANTS])
def rendered(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rendered]:
    overlay: str = request.param
    yield render(overlay, tmp_path_factory.mktemp("k8s") / f"{overlay}.yaml")
