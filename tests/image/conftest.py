"""The image, built once per session (or reused: scripts/build-image keys it by its inputs), one
read-only-root container of it for every test, and the rendered manifests that describe how
Kubernetes runs it. Without buildah, mmdebstrap or root the tests skip, except under CI=true,
where they fail."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

from tests.image.engine import Container, Image, build
from tests.image.pods import runs_notar
from tests.k8s.conftest import OVERLAYS, Rendered, render
from tests.needs import missing


def _needs(what: str) -> None:
    missing(f"the image tests need {what} (scripts/install --test installs the tools; CI runs as root)")


@pytest.fixture(scope="session")
def image() -> Image:
    for tool in ("buildah", "mmdebstrap"):
        if shutil.which(tool) is None:
            _needs(tool)
    if os.geteuid() != 0:
        _needs("root (chroot isolation, read-only bind mounts)")
    built = build()
    print(f"\n{built.build_output.strip().splitlines()[-1]}")  # image, size, build time
    return built


@pytest.fixture(scope="session")
def manifests(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Rendered]:
    out = tmp_path_factory.mktemp("rendered")
    return {overlay: render(overlay, out / f"{overlay}.yaml") for overlay in OVERLAYS}


@pytest.fixture(scope="session")
def container(image: Image, manifests: dict[str, Rendered]) -> Iterator[Container]:
    mountpoints = sorted(
        {
            m["mountPath"]
            for r in manifests.values()
            for w in r.of_kind("Deployment") + r.of_kind("StatefulSet")
            for c in w["spec"]["template"]["spec"].get("initContainers", [])
            + w["spec"]["template"]["spec"]["containers"]
            if runs_notar(c)
            for m in c.get("volumeMounts", [])
        }
    )
    c = Container(image, mountpoints)
    try:
        yield c
    finally:
        c.remove()

