"""The witness's durable state: per log, the latest checkpoint it cosigned and the rotation
statements it accepted.

Under ``DATA_DIR/logs/<sha256 hex of the origin>/``: ``checkpoint`` holds the latest cosigned
checkpoint as a signed note (the log signatures that verified, then the witness's cosignatures) —
exactly what ``GET /<origin hash>/checkpoint`` serves — and ``rotation-<n>`` the n-th accepted
rotation statement. Every write goes to a temporary file that is fsynced, renamed into place, and
its directory fsynced: once a save returns, the state survives a crash or power loss, and a crash
mid-write leaves the previous state whole. Saves block: the app runs them in a thread.
"""

from __future__ import annotations

import logging
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

from merkle.checkpoint import Checkpoint, parse_checkpoint
from merkle.keyhistory import KeyHistory, LogKey, read_rotation
from merkle.note import parse_note
from merkle.witness import origin_hash
from storage.errors import ConfigError
from storage.fs import fsync_dir

log = logging.getLogger("notar.witness")
_TMP = ".tmp-"


@dataclass(frozen=True)
class LogState:
    """What the witness holds for one log: its key history, and the latest checkpoint it cosigned
    (``note`` as served, ``checkpoint`` parsed from it), if any."""

    history: KeyHistory
    note: str | None = None
    checkpoint: Checkpoint | None = None


class StateStore:
    """The state files under ``DATA_DIR/logs``."""

    def __init__(self, data_dir: Path) -> None:
        self.root = data_dir / "logs"

    def load(self, logs: dict[str, LogKey]) -> dict[str, LogState]:
        """The state of every log of the logs file. ``ConfigError`` naming the file when a state
        file does not read, or when the stored rotations do not chain to the log's key there."""
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        return {origin: self._load_one(origin, key) for origin, key in logs.items()}

    def save_checkpoint(self, origin: str, note: str) -> None:
        """Replace the origin's latest cosigned checkpoint, durably."""
        self._write(self._dir(origin), "checkpoint", note)

    def save_rotation(self, origin: str, number: int, statement: str) -> None:
        """Store the origin's ``number``-th rotation statement (counted from 1), durably."""
        self._write(self._dir(origin), f"rotation-{number:06d}", statement)

    def _dir(self, origin: str) -> Path:
        return self.root / origin_hash(origin)

    def _load_one(self, origin: str, key: LogKey) -> LogState:
        directory = self._dir(origin)
        if not directory.is_dir():
            return LogState(KeyHistory.start(key))
        for leftover in directory.glob(_TMP + "*"):  # a save cut short by a crash: never renamed
            leftover.unlink(missing_ok=True)
        rotations = sorted(directory.glob("rotation-*"))
        statements = [self._read(path) for path in rotations]
        history = KeyHistory.start(key)
        if statements:
            try:
                first = read_rotation(statements[0]).old_log
                history = KeyHistory.from_statements(first, statements)
            except ValueError as e:
                raise self._corrupt(directory, f"the rotation statements do not chain: {e}") from e
            if history.period_of(key) is None:
                raise self._corrupt(
                    directory,
                    f"the logs file trusts {key.to_key()}, which the stored rotations of {origin} never "
                    "name; put a key of that history in the logs file, or remove the rotation files",
                )
        path = directory / "checkpoint"
        if not path.exists():
            return LogState(history)
        note = self._read(path)
        try:
            checkpoint = parse_checkpoint(parse_note(note).text, origin=origin)
        except ValueError as e:
            raise self._corrupt(path, f"not a signed checkpoint of {origin}: {e}") from e
        return LogState(history, note, checkpoint)

    def _read(self, path: Path) -> str:
        try:
            return path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise self._corrupt(path, f"cannot read it: {e}") from e

    @staticmethod
    def _corrupt(path: Path, why: str) -> ConfigError:
        return ConfigError(f"--data-dir: witness state {path}: {why}", setting="DATA_DIR")

    @staticmethod
    def _write(directory: Path, name: str, text: str) -> None:
        if not directory.is_dir():
            directory.mkdir(mode=0o700, parents=True)
            fsync_dir(directory.parent)
        tmp = directory / f"{_TMP}{uuid.uuid4().hex}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            view = memoryview(text.encode("utf-8"))
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            tmp.unlink(missing_ok=True)
            raise
        os.close(fd)
        os.replace(tmp, directory / name)
        fsync_dir(directory)
