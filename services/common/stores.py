"""Opening the configured object store and RocksDB index (SPEC §8 STORE, S3_*, DATA_DIR)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from services.common.components import StoreConfig
from storage.base import ObjectStore
from storage.errors import ConfigError
from storage.fs import FsStore
from storage.rocks import RocksIndex
from storage.s3 import S3Config, S3Store


def private_dir(path: Path) -> Path:
    """`path`, created mode 0700 when it is missing: DATA_DIR holds the signing keys, the tenant
    index and, with STORE=fs, every tenant's documents. An existing directory is left as it is."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


async def open_store(config: StoreConfig, env: Mapping[str, str]) -> ObjectStore:
    """The object store of STORE: a directory under DATA_DIR, or the S3 bucket; credentials come
    from the standard AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or the default AWS chain)."""
    if config.store == "fs":
        return FsStore(private_dir(config.data_dir) / "store")
    bucket = config.s3_bucket.need("when STORE=s3")
    try:
        s3 = S3Config(
            bucket=bucket,
            endpoint=config.s3_endpoint,
            region=config.s3_region,
            prefix=config.s3_prefix,
            path_style=config.s3_path_style,
            access_key_id=env.get("AWS_ACCESS_KEY_ID"),
            secret_access_key=env.get("AWS_SECRET_ACCESS_KEY"),
            session_token=env.get("AWS_SESSION_TOKEN"),
        )
    except ValueError as e:
        raise ConfigError(f"S3 settings are wrong: {e}", setting="S3_BUCKET") from e
    return await S3Store.from_config(s3)


def open_index(config: StoreConfig) -> RocksIndex:
    """The RocksDB index under DATA_DIR/index (or the shard's `index_dir`)."""
    private_dir(config.data_dir)
    return RocksIndex.open(private_dir(config.index_path))
