"""Secret key files (signing keys, the index key): created exclusively, mode 0600 and fsynced in a
0700 directory; refused when their group or others can read them."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from storage.errors import ConfigError


def _fsync_dir(path: Path) -> None:
    dir_fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def write_secret(path: Path, text: str) -> bool:
    """Create `path` holding `text`, mode 0600, fsynced; False (nothing written) when it exists.
    The text is written to a private temporary file that is then linked to `path`, which fails
    when `path` exists: a process starting at the same moment reads the whole key or none."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        try:
            os.write(fd, text.encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    _fsync_dir(path.parent)
    return True


def read_secret(path: Path, setting: str) -> str:
    """The stripped text of a key file; ConfigError naming `setting` when it cannot be read or
    its group or others can read it."""
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError as e:
        raise ConfigError(f"{setting}: cannot read key file {path}: {e.strerror}", setting=setting) from e
    except UnicodeDecodeError as e:
        raise ConfigError(f"{setting}: key file {path} is not text", setting=setting) from e
    if path.stat().st_mode & 0o077:
        raise ConfigError(
            f"{setting}: key file {path} is readable by others; run chmod 600 {path}", setting=setting
        )
    return text
