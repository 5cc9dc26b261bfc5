"""The log's signing keys: an Ed25519 log key and a cosignature/v1 clock key.

They live in DATA_DIR/keys/ (log.key, clock.key, mode 0600) or in files named by LOG_KEY_FILE and
CLOCK_KEY_FILE (Kubernetes Secrets). Each file holds one signed-note private key string, so the
key's name travels with it: rotating a key means a new key name, and old checkpoints still verify
under the old published verifier key.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from merkle.cosignature import CosignatureSigner
from merkle.note import Signer
from services.common.keyfiles import read_secret, write_secret
from storage.errors import ConfigError


@dataclass(frozen=True)
class LogKeys:
    log: Signer
    clock: CosignatureSigner

    @property
    def verifier_keys(self) -> dict[str, str]:
        return {"log": self.log.verifier().to_key(), "clock": self.clock.verifier().to_key()}


def clock_key_name(origin: str) -> str:
    return f"{origin}/clock"


def key_paths(data_dir: Path, log_key_file: Path | None, clock_key_file: Path | None) -> tuple[Path, Path]:
    return (
        log_key_file or data_dir / "keys" / "log.key",
        clock_key_file or data_dir / "keys" / "clock.key",
    )


def generate_keys(
    data_dir: Path, origin: str, log_key_file: Path | None = None, clock_key_file: Path | None = None
) -> list[Path]:
    """Create whichever of the two key files is missing; return the paths created."""
    log_path, clock_path = key_paths(data_dir, log_key_file, clock_key_file)
    if log_key_file is None or clock_key_file is None:  # DATA_DIR/keys/: DATA_DIR private too
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    created = []
    if not log_path.exists() and write_secret(log_path, Signer.generate(origin).to_key() + "\n"):
        created.append(log_path)
    if not clock_path.exists():
        clock = CosignatureSigner.generate(clock_key_name(origin)).to_key()
        if write_secret(clock_path, clock + "\n"):
            created.append(clock_path)
    return created


def load_keys(
    data_dir: Path, log_key_file: Path | None = None, clock_key_file: Path | None = None
) -> LogKeys:
    """Read both keys; ConfigError naming the setting when a file is missing or wrong."""
    log_path, clock_path = key_paths(data_dir, log_key_file, clock_key_file)
    out = []
    for path, setting, kind in (
        (log_path, "LOG_KEY_FILE", Signer),
        (clock_path, "CLOCK_KEY_FILE", CosignatureSigner),
    ):
        if not path.exists():
            raise ConfigError(
                f"{setting}: no key at {path}; run `notar keygen` or set {setting}", setting=setting
            )
        try:
            out.append(kind.from_key(read_secret(path, setting)))
        except ValueError as e:
            raise ConfigError(
                f"{setting}: {path} does not hold a valid key of its kind: {e}", setting=setting
            ) from e
    log, clock = out
    assert isinstance(log, Signer) and isinstance(clock, CosignatureSigner)
    return LogKeys(log, clock)
