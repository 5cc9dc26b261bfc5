"""The witness's own cosigning keys and the log keys it trusts.

Cosigning keys live in ``DATA_DIR/keys/witness-<alg>.key`` (mode 0600, one signed-note private
key string each): ``ed25519`` (tlog-cosignature/v1, type 0x04) and ``ml-dsa-44`` (type 0x06). The
witness cosigns with every key it finds there. The logs file holds one log verifier key per line
(its name is the log's origin), ``#`` comments and blank lines.
"""

from __future__ import annotations

import os
from pathlib import Path

from merkle.cosignature import CosignatureSigner, verifier_from_key
from merkle.keyhistory import LogKey
from merkle.mldsa import MLDSA44CosignatureSigner, mldsa44_available
from storage.errors import ConfigError
from storage.fs import fsync_dir

ALGORITHMS = ("ed25519", "ml-dsa-44")
Cosigner = CosignatureSigner | MLDSA44CosignatureSigner
_KINDS: dict[str, type[CosignatureSigner] | type[MLDSA44CosignatureSigner]] = {
    "ed25519": CosignatureSigner,
    "ml-dsa-44": MLDSA44CosignatureSigner,
}


def key_path(data_dir: Path, alg: str) -> Path:
    return data_dir / "keys" / f"witness-{alg}.key"


def generate_key(data_dir: Path, name: str, alg: str) -> Cosigner:
    """Create the witness key of ``alg`` named ``name``; ``ConfigError`` if that key file exists,
    the name is not a valid key name, or ML-DSA-44 is not available."""
    if alg == "ml-dsa-44" and not mldsa44_available():
        raise ConfigError(
            "--alg ml-dsa-44: the installed Python package cryptography has no ML-DSA-44 "
            "(cryptography 50.0 with OpenSSL >= 3.5 has it); use --alg ed25519",
            setting="ALG",
        )
    path = key_path(data_dir, alg)
    try:
        signer = _KINDS[alg].generate(name)
    except ValueError as e:
        raise ConfigError(f"--name {name!r}: {e}", setting="NAME") from e
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.parent.mkdir(mode=0o700, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise ConfigError(
            f"--data-dir: {path} already holds a witness key; it is never overwritten", setting="DATA_DIR"
        ) from None
    try:
        os.write(fd, (signer.to_key() + "\n").encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)
    fsync_dir(path.parent)
    return signer


def load_keys(data_dir: Path) -> list[Cosigner]:
    """Every witness key under ``DATA_DIR/keys``; ``ConfigError`` if there is none, one is
    readable by others or does not hold a key of its kind."""
    signers: list[Cosigner] = []
    for alg, kind in _KINDS.items():
        path = key_path(data_dir, alg)
        if not path.exists():
            continue
        if path.stat().st_mode & 0o077:
            raise ConfigError(
                f"--data-dir: {path} is readable by others; run chmod 600 {path}", setting="DATA_DIR"
            )
        try:
            signers.append(kind.from_key(path.read_text(encoding="utf-8").strip()))
        except (OSError, ValueError) as e:
            raise ConfigError(f"--data-dir: {path} does not hold a valid {alg} witness key: {e}",
                              setting="DATA_DIR") from e
    if not signers:
        raise ConfigError(
            f"--data-dir: no witness key in {data_dir / 'keys'}; "
            f"run notar witness keygen --data-dir {data_dir}",
            setting="DATA_DIR",
        )
    return signers


def read_logs_file(path: Path) -> dict[str, LogKey]:
    """The trusted logs by origin; ``ConfigError`` naming the line that is not a verifier key or
    names an origin twice, or when the file cannot be read or lists no log."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"--logs: cannot read {path}: {e}", setting="LOGS") from e
    logs: dict[str, LogKey] = {}
    for number, line in enumerate(lines, 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        try:
            key = verifier_from_key(text)
        except ValueError as e:
            raise ConfigError(
                f"--logs: {path} line {number} is not a log verifier key: {e}", setting="LOGS"
            ) from e
        if key.name in logs:
            raise ConfigError(f"--logs: {path} line {number} names origin {key.name!r} a second time",
                              setting="LOGS")
        logs[key.name] = key
    if not logs:
        raise ConfigError(f"--logs: {path} lists no log verifier key", setting="LOGS")
    return logs
