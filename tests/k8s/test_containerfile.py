"""The Containerfile, checked by reading: it copies what the package needs, runs as the non-root
user the manifests expect, and starts `notar`. tests/image/ builds it and runs the image."""

from __future__ import annotations

import re
import tomllib
from typing import Any

from tests.k8s.conftest import ROOT, Rendered

CONTAINERFILE = (ROOT / "Containerfile").read_text()


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", CONTAINERFILE)
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_two_stages_on_one_python_that_the_package_supports() -> None:
    steps = instructions()
    froms = [rest for word, rest in steps if word == "FROM"]
    assert froms == ["${BUILD_BASE} AS build", "${RUNTIME_BASE}"], froms
    args = dict(re.findall(r"ARG (\w+)=(\S+)", CONTAINERFILE))
    assert args["BUILD_BASE"] == args["RUNTIME_BASE"], "one Python in both stages: the venv is copied"
    image = args["RUNTIME_BASE"]
    assert re.search(r":[\w.-]+@sha256:[0-9a-f]{64}$", image), "the default base is pinned by digest"
    minor = int(re.search(r"python:3\.(\d+)", image).group(1))  # type: ignore[union-attr]
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    needed = int(pyproject["project"]["requires-python"].removeprefix(">=3."))
    assert minor >= needed


def test_copies_every_package_and_what_the_build_reads() -> None:
    copies = [rest.split() for word, rest in instructions() if word == "COPY" and "--from" not in rest]
    sources = {src.rstrip("/") for parts in copies for src in parts[:-1]}
    pyproject: dict[str, Any] = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = {p.rstrip("*") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]}
    assert packages <= sources, f"not copied: {packages - sources}"
    assert {"pyproject.toml", pyproject["project"]["readme"]} <= sources
    for src in sources:
        assert (ROOT / src).exists(), src
    ignore = (ROOT / ".containerignore").read_text().splitlines()
    assert all(f"!{src}/" in ignore or f"!{src}" in ignore for src in sources), (
        "the build context leaves it out"
    )


def test_runs_notar_as_the_user_the_manifests_expect(rendered: Rendered) -> None:
    steps = instructions()
    user = [rest for word, rest in steps if word == "USER"]
    assert user == ["10001:10001"], "numeric, so that runAsNonRoot can check it"
    assert ("ENTRYPOINT", '["notar"]') in steps
    uid, gid = (int(x) for x in user[0].split(":"))
    for w in rendered.of_kind("Deployment") + rendered.of_kind("StatefulSet"):
        spec = w["spec"]["template"]["spec"]
        images = {c["image"].rsplit(":", 1)[0].rsplit("/", 1)[-1] for c in spec["containers"]}
        if images != {"notar"}:
            continue  # the dev overlay's SeaweedFS
        assert (spec["securityContext"]["runAsUser"], spec["securityContext"]["runAsGroup"]) == (uid, gid)
        for c in spec["containers"]:
            assert c["args"][0] == "serve" and "command" not in c, "the image's ENTRYPOINT is notar"
