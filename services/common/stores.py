"""Opening the configured object store and RocksDB index (SPEC §8 STORE, S3_*, DATA_DIR)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from services.common.config import Settings
from storage.base import ObjectStore
from storage.errors import ConfigError
from storage.fs import FsStore
from storage.rocks import RocksIndex
from storage.s3 import S3Config, S3Store


def data_dir(settings: Settings) -> Path:
    return Path(settings.get("DATA_DIR"))


def private_dir(path: Path) -> Path:
    """`path`, created mode 0700 when it is missing: DATA_DIR holds the signing keys, the tenant
    index and, with STORE=fs, every tenant's documents. An existing directory is left as it is."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


async def open_store(settings: Settings, env: Mapping[str, str]) -> ObjectStore:
    """The object store of STORE: a directory under DATA_DIR, or the S3 bucket; credentials come
    from the standard AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or the default AWS chain)."""
    if settings.get("STORE") == "fs":
        return FsStore(private_dir(data_dir(settings)) / "store")
    bucket = settings.require("S3_BUCKET", "when STORE=s3")
    try:
        config = S3Config(
            bucket=bucket,
            endpoint=settings.get("S3_ENDPOINT"),
            region=settings.get("S3_REGION"),
            prefix=settings.get("S3_PREFIX"),
            path_style=settings.get("S3_PATH_STYLE"),
            access_key_id=env.get("AWS_ACCESS_KEY_ID"),
            secret_access_key=env.get("AWS_SECRET_ACCESS_KEY"),
            session_token=env.get("AWS_SESSION_TOKEN"),
        )
    except ValueError as e:
        raise ConfigError(f"S3 settings are wrong: {e}", setting="S3_BUCKET") from e
    return await S3Store.from_config(config)


def open_index(settings: Settings) -> RocksIndex:
    return RocksIndex.open(private_dir(data_dir(settings)) / "index")
