"""The built image, driven with buildah (vfs storage, chroot isolation, the host's network).

``build()`` runs `scripts/build-image` (which reuses the image when its inputs have not changed)
and reads the image's configuration. ``Container`` is one working container of the image whose
root filesystem is mounted read-only, as Kubernetes mounts it with `readOnlyRootFilesystem`:
every process the tests start runs in it (several at once, each with its own volumes,
environment and user), and a write outside its volumes fails with EROFS. Only `/run` stays
writable, by root alone, because buildah creates `/run/.containerenv` on every run.
`podman run` is not used: crun cannot set its rlimits on this machine.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
IMAGE = "localhost/notar:dev"
BUILDAH = ("buildah", "--storage-driver", "vfs")
RUN = ("run", "--isolation", "chroot", "--network", "host")


def buildah(*args: str, timeout: float = 120) -> str:
    """Run one buildah command; its stdout, or AssertionError with its stderr."""
    done = subprocess.run([*BUILDAH, *args], capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"buildah {' '.join(args)}: {done.stderr.strip()}"
    return done.stdout


@dataclass(frozen=True)
class Image:
    name: str
    id: str
    config: dict[str, Any]  # the OCI image configuration's `config`
    layer_bytes: int
    build_output: str  # what scripts/build-image printed

    @property
    def user(self) -> tuple[int, int]:
        uid, _, gid = str(self.config["User"]).partition(":")
        return int(uid), int(gid)

    @property
    def env(self) -> dict[str, str]:
        return dict(e.split("=", 1) for e in self.config.get("Env", []))

    def argv(self, command: Sequence[str] | None, args: Sequence[str] | None) -> list[str]:
        """What a container runs, by Kubernetes' rule: `command` replaces the ENTRYPOINT and
        drops the CMD; `args` replaces the CMD."""
        entry = list(command) if command else list(self.config.get("Entrypoint") or [])
        rest = list(args) if args is not None else ([] if command else list(self.config.get("Cmd") or []))
        return entry + rest


def build(timeout: float = 600) -> Image:
    """Build (or reuse) localhost/notar:dev with scripts/build-image and describe it."""
    done = subprocess.run(
        [str(ROOT / "scripts" / "build-image")], cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, f"scripts/build-image failed:\n{done.stderr[-6000:]}\n{done.stdout}"
    # by the ID this build recorded: the tag may move if another checkout builds meanwhile
    built = json.loads((ROOT / "build" / "image.json").read_text())["id"]
    info = json.loads(buildah("inspect", "--type", "image", built))
    layers = json.loads(info["Manifest"])["layers"]
    return Image(IMAGE, info["FromImageID"], info["OCIv1"]["config"], sum(int(x["size"]) for x in layers),
                 done.stdout + done.stderr)


@dataclass
class Process:
    """`buildah run` of one command; ``stop()`` ends it as a kubelet would (SIGTERM)."""

    argv: list[str]
    popen: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM to the command inside (buildah itself would SIGKILL it), then its exit code."""
        if self.popen.poll() is None:
            for pid in _descendants(self.popen.pid):
                if not _cmdline(pid).startswith("buildah"):
                    os.kill(pid, signal.SIGTERM)
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(timeout=10)
            raise AssertionError(
                f"{self.argv} did not stop within {timeout:g} s\n{self.output()[-3000:]}"
            ) from None


class Container:
    """A working container of ``image`` with a read-only root. ``mountpoints`` are created
    first, as a container runtime creates the targets of a pod's volume mounts."""

    def __init__(self, image: Image, mountpoints: Sequence[str] = ()) -> None:
        self.image = image
        self.name = f"notar-test-{uuid.uuid4().hex[:10]}"
        buildah("from", "--pull=never", "--name", self.name, image.id)
        self._binds: list[Path] = []
        try:
            self.rootfs = Path(buildah("mount", self.name).strip())
            for path in mountpoints:
                (self.rootfs / path.lstrip("/")).mkdir(parents=True, exist_ok=True)
            # buildah creates /etc/hosts and /etc/resolv.conf on its first run, then mounts over them
            self.run(["true"]).popen.wait(timeout=60)
            self._bind(self.rootfs, "ro")
            self._bind(self.rootfs / "run", "rw")
        except BaseException:
            self.remove()
            raise

    def _bind(self, path: Path, mode: str) -> None:
        subprocess.run(["mount", "--bind", str(path), str(path)], check=True, timeout=30)
        self._binds.append(path)
        subprocess.run(["mount", "-o", f"remount,bind,{mode}", str(path)], check=True, timeout=30)

    def run(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        volumes: Mapping[str, Path] | None = None,
        read_only: Sequence[str] = (),
        user: str | None = None,
        log: Path | None = None,
    ) -> Process:
        """Start ``argv`` in the container; ``volumes`` maps a path in the container to a host
        directory (those named in ``read_only`` mounted read-only)."""
        opts: list[str] = []
        for name, value in (env or {}).items():
            opts += ["--env", f"{name}={value}"]
        for target, source in (volumes or {}).items():
            opts += ["--volume", f"{source}:{target}" + (":ro" if target in read_only else "")]
        if user is not None:
            opts += ["--user", user]
        log = log or Path(os.devnull)
        with open(log, "ab") as out:
            popen = subprocess.Popen(
                [*BUILDAH, *RUN, *opts, self.name, "--", *argv],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            )
        return Process(list(argv), popen, log)

    def check(self, argv: Sequence[str], tmp: Path, *, timeout: float = 120, **kw: Any) -> str:
        """Run ``argv`` to the end; its output, or AssertionError if it exits non-zero."""
        log = tmp / f"run-{uuid.uuid4().hex[:8]}.log"
        proc = self.run(argv, log=log, **kw)
        code = proc.popen.wait(timeout=timeout)
        assert code == 0, f"{list(argv)} exited {code}:\n{proc.output()[-3000:]}"
        return proc.output()

    def run_dir_listing(self) -> dict[str, tuple[int, int]]:
        """path → (size, mtime_ns) of everything under the root's /run, the one part of it that
        stays writable (by root); volume mountpoints and buildah's own .containerenv left out."""
        run = self.rootfs / "run"
        listing = {}
        for path in sorted(run.rglob("*")):
            rel = str(path.relative_to(run))
            if rel != ".containerenv":
                st = path.lstat()
                listing[rel] = (-1, 0) if path.is_dir() else (st.st_size, st.st_mtime_ns)
        return listing

    def remove(self) -> None:
        for path in reversed(self._binds):
            subprocess.run(["umount", str(path)], timeout=30, check=False)
        self._binds.clear()
        subprocess.run([*BUILDAH, "rm", self.name], capture_output=True, timeout=120, check=False)


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the process ended meanwhile
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return "buildah"  # gone: nothing to signal


def wait_http(url: str, proc: Process, *, timeout: float = 90) -> None:
    """Poll ``url`` until it answers 200; fail early if the process exits."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        code = proc.popen.poll()
        assert code is None, f"{proc.argv} exited {code} before {url} answered:\n{proc.output()[-3000:]}"
        assert time.monotonic() < deadline, f"{url}: no 200 in {timeout:g} s\n{proc.output()[-3000:]}"
        time.sleep(0.2)
