"""Go programs of tests/conformance, built offline against Debian's golang.org/x/mod.

GOPATH mode (GO111MODULE=off, GOPROXY=off): no module download, no network. In CI a missing Go or
x/mod fails the test; elsewhere it skips, naming what to install.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.needs import missing

MOD_PACKAGE = "golang-golang-x-mod-dev"


def gocode_root() -> Path:
    """The GOPATH root of Debian's golang.org/x/mod (…/src/golang.org/x/mod/sumdb/tlog inside it)."""
    try:
        files = subprocess.run(
            ["dpkg", "-L", MOD_PACKAGE], capture_output=True, text=True, timeout=30
        ).stdout.splitlines()
    except OSError:
        files = []
    marker = "/src/golang.org/x/mod/sumdb/tlog"
    for f in files:
        if f.endswith(marker):
            return Path(f[: -len(marker)])
    missing(f"{MOD_PACKAGE} is not installed (run scripts/install --test)")
    raise AssertionError("unreachable")


def build(source: Path, out: Path, name: str) -> Path:
    """``go build`` the package in ``source`` into ``out/name``."""
    root = gocode_root()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(out),
        "GO111MODULE": "off",
        "GOPATH": str(root),
        "GOCACHE": str(out / "cache"),
        "GOPROXY": "off",
        "GOFLAGS": "",
        "CGO_ENABLED": "0",
    }
    binary = out / name
    try:
        r = subprocess.run(
            ["go", "build", "-o", str(binary), "."],
            cwd=source,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
    except FileNotFoundError:
        missing("go is not installed (run scripts/install --test)")
    assert r.returncode == 0, f"go build failed:\n{r.stdout}{r.stderr}"
    return binary
