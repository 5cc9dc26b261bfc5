"""The log's signing keys: an Ed25519 log key and a cosignature/v1 clock key.

They live in DATA_DIR/keys/ (log.key, clock.key, mode 0600) or in files named by LOG_KEY_FILE and
CLOCK_KEY_FILE (Kubernetes Secrets). Each file holds one signed-note private key string, so the
key's name travels with it. The log key's name is the log's origin and the clock key's is
`<origin>/clock` (SPEC §2): verifiers refuse a checkpoint whose origin is not its signer's name,
so the anchor refuses at start a key named otherwise.
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
    data_dir: Path, origin: str, log_key_file: Path | None = None, clock_key_file: Path | None = None
) -> LogKeys:
    """Read both keys of the log `origin`; ConfigError naming the setting and the file when one
    is missing, wrong, or not named as SPEC §2 says (the origin, and `<origin>/clock`)."""
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
    for path, setting, key, expected in (
        (log_path, "LOG_KEY_FILE", log, origin),
        (clock_path, "CLOCK_KEY_FILE", clock, clock_key_name(origin)),
    ):
        if key.name != expected:
            raise ConfigError(
                f"{setting}: the key in {path} is named {key.name!r}, but the key of this log must be "
                f"named {expected!r} (the log key is named after ORIGIN, the clock key after "
                f"ORIGIN/clock): set ORIGIN to the log these keys sign, or point {setting} (or "
                "DATA_DIR) at keys made for this origin by `notar keygen`",
                setting=setting,
            )
    return LogKeys(log, clock)
