"""The frozen config of each component, built once by `load()` from the settings (SPEC §8).

`load()` merges flags, NOTAR_* variables, notar.toml and defaults (`services.common.config`) and
returns a `NotarConfig`: one frozen dataclass per component. The entry point (`notar serve`, a
CLI command, a test) calls it and passes each component its own part; no other module reads a
setting by name (tests/test_config.py holds that). A setting some uses need and others do not
(S3_BUCKET only with STORE=s3, EVM_RPC only with ANCHORS=evm or --online…) is a `Wanted`: its
`need(why)` raises the ConfigError naming it where it is needed, so a pod that does not use it
starts without it, as before.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

from services.common.config import Settings, Witness, load_settings, missing
from services.published.layout import LOG_PREFIX
from storage.errors import ConfigError

__all__ = [
    "BackupsConfig",
    "ChainsConfig",
    "ClientConfig",
    "CommitterConfig",
    "HttpConfig",
    "KeysConfig",
    "NotarConfig",
    "ScittConfig",
    "SequencerConfig",
    "ShardsConfig",
    "StoreConfig",
    "Wanted",
    "Witness",
    "WitnessesConfig",
    "load",
]

T = TypeVar("T")


@dataclass(frozen=True)
class Wanted(Generic[T]):
    """A setting that may be unset: `value` (None when unset), `need(why)` when a use needs it."""

    setting: str
    value: T | None = None

    def need(self, why: str) -> T:
        """The value; ConfigError naming the setting and `why` it is needed when it is unset."""
        if self.value is None or self.value == "":
            raise missing(self.setting, why)
        return self.value


@dataclass(frozen=True)
class StoreConfig:
    """The object store and the local directory (STORE, S3_*, DATA_DIR)."""

    store: str = "fs"
    data_dir: Path = Path("./notar-data")
    s3_bucket: Wanted[str] = Wanted("S3_BUCKET")
    s3_endpoint: str | None = None
    s3_region: str = "us-east-1"
    s3_prefix: str = ""
    s3_path_style: bool = True
    index_dir: Path | None = None  # the RocksDB index (DATA_DIR/index); each shard its own in one process

    @property
    def index_path(self) -> Path:
        return self.index_dir or self.data_dir / "index"


@dataclass(frozen=True)
class SequencerConfig:
    """The sequencer of one log (ORIGIN, BATCH_MS, BATCH_MIN_MS, BATCH_MAX, QUEUE_MAX, REPEATS_MAX);
    `prefix` is where its log is published, the rest tuning without a setting."""

    origin: str
    prefix: str = LOG_PREFIX
    batch_ms: int = 100
    batch_min_ms: int = 0
    batch_max: int = 20_000
    queue_max: int = 200_000
    repeats_max: int = 100
    publish_backlog: int = 64
    lease_ttl_s: float = 30.0


@dataclass(frozen=True)
class CommitterConfig:
    """The committer (ANCHORS, ANCHOR_INTERVAL_S): which kinds anchor the checkpoint published
    at `prefix`, and how often."""

    interval_s: float = 10.0
    prefix: str = LOG_PREFIX
    max_backoff_s: float = 300.0
    kinds: tuple[str, ...] = ("local",)


@dataclass(frozen=True)
class ChainsConfig:
    """The EVM chain and the RFC 3161 TSA (EVM_*, TSA_*): anchoring to them, checking their
    anchors (`notar verify --online`, POST /v1/verify), deploying the contract."""

    evm_rpc: Wanted[str] = Wanted("EVM_RPC")
    evm_key_file: Wanted[Path] = Wanted("EVM_KEY_FILE")
    evm_contract: Wanted[str] = Wanted("EVM_CONTRACT")
    evm_confirmations: int = 1
    evm_explorer_url: str | None = None
    evm_journal: Path = Path("./notar-data/anchors/evm-journal.json")
    tsa_url: Wanted[str] = Wanted("TSA_URL")
    tsa_ca_file: Wanted[Path] = Wanted("TSA_CA_FILE")


@dataclass(frozen=True)
class KeysConfig:
    """Where the log's keys are (LOG_KEY_FILE, CLOCK_KEY_FILE, INDEX_KEY_FILE; DATA_DIR/keys/
    when unset) and the origin its signing keys are named after."""

    origin: str
    data_dir: Path
    log_key_file: Path | None = None
    clock_key_file: Path | None = None
    index_key_file: Path | None = None

    @property
    def index_key_path(self) -> Path:
        return self.index_key_file or self.data_dir / "keys" / "index.key"


@dataclass(frozen=True)
class HttpConfig:
    """The HTTP server of every role and how its pods reach the anchor (LISTEN, READ_TIMEOUT_S,
    DRAIN_S, KEY_CACHE_S, DOCUMENT_MAX_MB, LOG_FORMAT, ANCHOR_URL), its processes (WORKERS),
    POST /v1/verify's worker pool (VERIFY_WORKERS, VERIFY_QUEUE), and the memory the verify
    service keeps the log's immutable files in (TILE_CACHE_MB)."""

    listen: tuple[str, int] = ("127.0.0.1", 8080)
    read_timeout_s: int = 30
    drain_s: int = 10
    key_cache_s: int = 30
    document_max_mb: int | None = None
    log_format: str = "text"
    anchor_url: str = "http://127.0.0.1:8080"
    verify_workers: int = 1
    verify_queue: int = 16
    tile_cache_mb: int = 64
    workers: int | None = None  # WORKERS; None (`auto`, the default): the CPUs this process may use

    @property
    def document_max_bytes(self) -> int:
        """DOCUMENT_MAX_MB in bytes; 0 for no limit."""
        return (self.document_max_mb or 0) * 1024 * 1024


@dataclass(frozen=True)
class BackupsConfig:
    """The backups of the anchor's index to the object store (BACKUP_INTERVAL_S, 0: none;
    BACKUP_KEEP); `scratch` is the local directory a backup is made in before its upload."""

    scratch: Path
    interval_s: int = 3600
    keep: int = 24


@dataclass(frozen=True)
class ClientConfig:
    """Where the client commands send requests, and as whom (URL, API_KEY)."""

    url: str = "http://127.0.0.1:8080"
    api_key: Wanted[str] = Wanted("API_KEY")


@dataclass(frozen=True)
class WitnessesConfig:
    """The C2SP tlog-witnesses the anchor submits checkpoints to (SPEC §11: WITNESSES,
    WITNESS_QUORUM, WITNESS_INTERVAL_S); `quorum` is how many must cosign, at most all of them."""

    witnesses: tuple[Witness, ...] = ()
    quorum: int = 0
    interval_s: int = 10


@dataclass(frozen=True)
class ShardsConfig:
    """Logs per deployment (SHARDS, SPEC §10); 1 is the one log `<ORIGIN>` under `log/`. An
    anchor pod serving one of several shards claims it by `ordinal` (SHARD_ORDINAL, else the
    `-<n>` ending of a StatefulSet pod's HOSTNAME) and advertises `url` (SHARD_URL) in the shard
    table for ingest and verify pods. Frozen shards' indexes drop their erased rows every
    `frozen_compact_s` (FROZEN_COMPACT_S)."""

    count: int = 1
    ordinal: Wanted[int] = Wanted("SHARD_ORDINAL")
    url: Wanted[str] = Wanted("SHARD_URL")
    frozen_compact_s: int = 86_400


@dataclass(frozen=True)
class ScittConfig:
    """The SCITT routes (SCITT_WAIT_MS, SCITT_MAX_KB): how long POST /entries waits for a
    statement's receipt before it answers 303, and the largest statement it takes."""

    wait_ms: int = 3000
    max_kb: int = 1024

    @property
    def wait_s(self) -> float:
        return self.wait_ms / 1000

    @property
    def max_bytes(self) -> int:
        return self.max_kb * 1024


@dataclass(frozen=True)
class NotarConfig:
    """Every component's config, from one `load()`."""

    store: StoreConfig
    sequencer: SequencerConfig
    committer: CommitterConfig
    chains: ChainsConfig
    keys: KeysConfig
    http: HttpConfig
    backups: BackupsConfig
    client: ClientConfig
    witnesses: WitnessesConfig
    shards: ShardsConfig
    scitt: ScittConfig

    @classmethod
    def from_settings(cls, s: Settings) -> NotarConfig:
        """Each component's part of the parsed settings; ConfigError for settings that contradict
        each other (a quorum larger than the witnesses listed)."""
        data_dir = Path(s.get("DATA_DIR"))
        origin: str = s.get("ORIGIN")

        def path(name: str) -> Path | None:
            value = s.get(name)
            return Path(value) if value else None

        def wanted_path(name: str) -> Wanted[Path]:
            return Wanted(name, path(name))

        witnesses: tuple[Witness, ...] = s.get("WITNESSES")
        quorum: int | None = s.get("WITNESS_QUORUM")
        if quorum is not None and quorum > len(witnesses):
            raise ConfigError(
                f"WITNESS_QUORUM is {quorum} but WITNESSES lists {len(witnesses)}: the quorum could never "
                "be met; list more witnesses or lower it",
                setting="WITNESS_QUORUM",
            )
        return cls(
            store=StoreConfig(
                store=s.get("STORE"),
                data_dir=data_dir,
                s3_bucket=Wanted("S3_BUCKET", s.get("S3_BUCKET")),
                s3_endpoint=s.get("S3_ENDPOINT"),
                s3_region=s.get("S3_REGION"),
                s3_prefix=s.get("S3_PREFIX"),
                s3_path_style=s.get("S3_PATH_STYLE"),
            ),
            sequencer=SequencerConfig(
                origin=origin,
                batch_ms=s.get("BATCH_MS"),
                batch_min_ms=s.get("BATCH_MIN_MS"),
                batch_max=s.get("BATCH_MAX"),
                queue_max=s.get("QUEUE_MAX"),
                repeats_max=s.get("REPEATS_MAX"),
            ),
            committer=CommitterConfig(interval_s=s.get("ANCHOR_INTERVAL_S"), kinds=s.get("ANCHORS")),
            chains=ChainsConfig(
                evm_rpc=Wanted("EVM_RPC", s.get("EVM_RPC")),
                evm_key_file=wanted_path("EVM_KEY_FILE"),
                evm_contract=Wanted("EVM_CONTRACT", s.get("EVM_CONTRACT")),
                evm_confirmations=s.get("EVM_CONFIRMATIONS"),
                evm_explorer_url=s.get("EVM_EXPLORER_URL"),
                evm_journal=data_dir / "anchors" / "evm-journal.json",
                tsa_url=Wanted("TSA_URL", s.get("TSA_URL")),
                tsa_ca_file=wanted_path("TSA_CA_FILE"),
            ),
            keys=KeysConfig(
                origin=origin,
                data_dir=data_dir,
                log_key_file=path("LOG_KEY_FILE"),
                clock_key_file=path("CLOCK_KEY_FILE"),
                index_key_file=path("INDEX_KEY_FILE"),
            ),
            http=HttpConfig(
                listen=s.get("LISTEN"),
                read_timeout_s=s.get("READ_TIMEOUT_S"),
                drain_s=s.get("DRAIN_S"),
                key_cache_s=s.get("KEY_CACHE_S"),
                document_max_mb=s.get("DOCUMENT_MAX_MB"),
                log_format=s.get("LOG_FORMAT"),
                anchor_url=s.get("ANCHOR_URL"),
                verify_workers=s.get("VERIFY_WORKERS"),
                verify_queue=s.get("VERIFY_QUEUE"),
                tile_cache_mb=s.get("TILE_CACHE_MB"),
                workers=s.get("WORKERS"),
            ),
            backups=BackupsConfig(
                scratch=data_dir / "backup",
                interval_s=s.get("BACKUP_INTERVAL_S"),
                keep=s.get("BACKUP_KEEP"),
            ),
            client=ClientConfig(url=s.get("URL"), api_key=Wanted("API_KEY", s.get("API_KEY"))),
            witnesses=WitnessesConfig(
                witnesses=witnesses,
                quorum=len(witnesses) if quorum is None else quorum,
                interval_s=s.get("WITNESS_INTERVAL_S"),
            ),
            shards=ShardsConfig(
                count=s.get("SHARDS"),
                ordinal=Wanted("SHARD_ORDINAL", s.get("SHARD_ORDINAL")),
                url=Wanted("SHARD_URL", s.get("SHARD_URL")),
                frozen_compact_s=s.get("FROZEN_COMPACT_S"),
            ),
            scitt=ScittConfig(wait_ms=s.get("SCITT_WAIT_MS"), max_kb=s.get("SCITT_MAX_KB")),
        )


def load(
    *,
    flags: Mapping[str, str | None] | None = None,
    env: Mapping[str, str] | None = None,
    config_file: Path | None = None,
) -> NotarConfig:
    """Every component's config from default < notar.toml < NOTAR_* (`env`) < `flags` (by
    setting name, e.g. {"DATA_DIR": "/var/lib/notar"}); ConfigError naming the setting that is
    wrong. `config_file` defaults to NOTAR_CONFIG, or ./notar.toml when that exists."""
    return NotarConfig.from_settings(load_settings(flags=flags, env=env, config_file=config_file))
