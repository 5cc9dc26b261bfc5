"""Rendering the kustomize overlays of k8s/ with `kubectl kustomize`, once per overlay."""

from __future__ import annotations

import os
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


def tool(name: str) -> str:
    """The command `name` next to this interpreter (the venv's bin/, where `scripts/install
    --test` puts kubectl and kubernetes-validate), else on PATH. Missing: skip, but fail in CI."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.is_file() and os.access(beside, os.X_OK) else shutil.which(name)
    if found is None:
        missing(f"{name} is not installed (scripts/install --test installs it)")
    return found


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


def render(overlay: str, out: Path) -> Rendered:
    kubectl = tool("kubectl")
    run = subprocess.run(
        [kubectl, "kustomize", str(K8S / "overlays" / overlay)], capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, f"kubectl kustomize {overlay} failed:\n{run.stderr}"
    out.write_text(run.stdout)
    docs = [d for d in yaml.safe_load_all(run.stdout) if d]
    assert docs, f"{overlay} renders nothing"
    return Rendered(overlay, out, docs)


@pytest.fixture(scope="session", params=OVERLAYS)
def rendered(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rendered]:
    overlay: str = request.param
    yield render(overlay, tmp_path_factory.mktemp("k8s") / f"{overlay}.yaml")
