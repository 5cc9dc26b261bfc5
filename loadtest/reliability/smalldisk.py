"""A small filesystem of its own for a data directory, so a scenario can fill it up.

An ext4 image of a few tens of MB (``mkfs.ext4`` on a file, no blocks reserved for root, since
the tests run as root) mounted with ``mount -o loop``: real ENOSPC and real fsync semantics,
without touching the machine's disks. Needs root (or CAP_SYS_ADMIN) and e2fsprogs + mount, both
of Debian priority "required"; ``cannot_mount()`` says why it is impossible here, if it is.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

_CHUNK = 1024 * 1024


def _run(*cmd: str) -> None:
    done = subprocess.run(cmd, capture_output=True, timeout=60, check=False)
    if done.returncode != 0:
        raise OSError(f"{' '.join(cmd)} failed ({done.returncode}): {done.stderr.decode(errors='replace')}")


def cannot_mount() -> str | None:
    """Why a loopback ext4 cannot be mounted here (not root, tools missing, refused), or None."""
    if os.geteuid() != 0:
        return "mounting a loopback filesystem needs root"
    missing = [t for t in ("mkfs.ext4", "mount", "umount") if shutil.which(t) is None]
    if missing:
        return f"{', '.join(missing)} not installed (Debian: e2fsprogs, mount)"
    with tempfile.TemporaryDirectory(prefix="notar-smalldisk-probe-") as d:
        try:
            with small_disk(Path(d) / "probe.img", Path(d) / "mnt", size_mb=4):
                pass
        except OSError as e:
            return f"cannot mount a loopback ext4 here: {e}"
    return None


@contextmanager
def small_disk(image: Path, mountpoint: Path, *, size_mb: int) -> Iterator[Path]:
    """An ext4 of ``size_mb`` MiB in the file ``image``, mounted on ``mountpoint`` (created if
    missing, its current contents hidden) until the block ends; then unmounted (lazily if a
    process still holds it) and the image removed."""
    with open(image, "wb") as f:
        f.truncate(size_mb * 1024 * 1024)
    mountpoint.mkdir(parents=True, exist_ok=True)
    try:
        _run("mkfs.ext4", "-F", "-q", "-m", "0", str(image))
        _run("mount", "-o", "loop", str(image), str(mountpoint))
        try:
            yield mountpoint
        finally:
            unmount(mountpoint)
    finally:
        image.unlink(missing_ok=True)


def unmount(mountpoint: Path) -> None:
    for _ in range(20):
        try:
            _run("umount", str(mountpoint))
            return
        except OSError:
            time.sleep(0.25)
    _run("umount", "-l", str(mountpoint))  # something still holds it: detach it anyway


def fill(path: Path) -> int:
    """Write zeros to ``path`` until the filesystem is full, fsynced; bytes written. ext4 gives
    back blocks it had reserved for delayed allocation once the data is synced, so it writes
    again, in smaller pieces, until not even 4 KiB fits right after an fsync."""
    written = 0
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for size in (_CHUNK, 64 * 1024, 4096, 4096):
            chunk = bytes(size)
            while True:
                try:
                    n = os.write(fd, chunk)
                except OSError as e:
                    if e.errno != errno.ENOSPC:
                        raise
                    break
                if n == 0:
                    break
                written += n
            with suppress(OSError):  # delayed allocation may only fail here
                os.fsync(fd)
    finally:
        os.close(fd)
    return written


def free_bytes(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize
