"""The index key: 32 random bytes that keep the service's private data private (docs/privacy.md).

Every key notar uses on the tenant index (RocksDB) and on stored documents (the object store) is
derived from it with BLAKE3's key-derivation mode, one context string per use (`derive`), so a
copy of the index or of the bucket alone reveals no notarized digest: the index key lives in
neither. It is a file of 64 hex digits (`openssl rand -hex 32` makes one), mode 0600, at
INDEX_KEY_FILE or DATA_DIR/keys/index.key; in Kubernetes the Secret `notar-index-key`. Every
anchor and ingest pod of a deployment must hold the same key: `notar keygen` and `notar serve
--role all|anchor` create it when it is missing, an ingest pod never does (two pods making two
keys could not read each other's documents).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import blake3

from services.common.components import KeysConfig
from services.common.keyfiles import read_secret, write_secret
from storage.errors import ConfigError

SIZE = 32
SETTING = "INDEX_KEY_FILE"
_HEX = re.compile(r"[0-9a-fA-F]{64}")


def derive(index_key: bytes, context: str) -> bytes:
    """The 32-byte key for one use of the index key, named by `context` (BLAKE3 derive_key:
    a hard-coded, globally unique string such as "notar 2026 tenant index row names v1")."""
    return blake3.blake3(index_key, derive_key_context=context).digest()


def create_index_key(path: Path) -> bool:
    """Write a new index key (32 bytes from the OS's CSPRNG) to `path`, mode 0600, unless a file
    is there; whether it did. Its directory is created 0700 when missing."""
    return not path.exists() and write_secret(path, os.urandom(SIZE).hex() + "\n")


def ensure_index_key(config: KeysConfig) -> Path | None:
    """Create the index key file of `config` when it is missing; its path when this call
    created it, else None."""
    path = config.index_key_path
    if config.index_key_file is None and not path.exists():  # DATA_DIR/keys/: DATA_DIR private too
        path.parent.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path if create_index_key(path) else None


def load_index_key(config: KeysConfig) -> bytes:
    """The index key; ConfigError naming INDEX_KEY_FILE when it is missing, readable by others,
    or not 64 hex digits. The key itself never appears in a message."""
    path = config.index_key_path
    if not path.exists():
        raise ConfigError(
            f"{SETTING}: no index key at {path}; run `notar keygen` (every ingest and anchor pod "
            f"needs the same key: mount it from a Secret) or set {SETTING}",
            setting=SETTING,
        )
    text = read_secret(path, SETTING)
    if not _HEX.fullmatch(text):
        raise ConfigError(
            f"{SETTING}: {path} must hold the index key as 64 hex digits (openssl rand -hex 32)",
            setting=SETTING,
        )
    return bytes.fromhex(text)
