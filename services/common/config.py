"""Settings (SPEC §8): one name each, read from notar.toml, NOTAR_<NAME> and command-line flags.

Precedence: flag > environment > file > default. Everything is parsed and validated here, once, at
the entry point; components get frozen dataclasses built from the result
(`services.common.components.load`), and only that module reads `Settings` by name. A wrong or
missing setting raises ConfigError naming it and saying how to fix it.
"""

from __future__ import annotations

import difflib
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from merkle.aggregate import AGGREGATE_SUFFIX
from storage.errors import ConfigError

ENV_PREFIX = "NOTAR_"
OTHER_VARIABLES = ("CONFIG", "IMAGE", "IMAGE_CACHE", "TEST_*")
"""NOTAR_* variables that are not settings: the config file's name, scripts/build-image's, the
test suite's (``TEST_*``)."""


def _text(name: str, value: str) -> str:
    return value


def _positive_int(name: str, value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {value!r}", setting=name) from None
    if n <= 0:
        raise ConfigError(f"{name} must be greater than 0, got {n}", setting=name)
    return n


def _workers(name: str, value: str) -> int | None:
    """WORKERS: a positive number, or `auto` (None): the CPUs this process may use."""
    return None if value.strip().lower() == "auto" else _positive_int(name, value)


def _whole(name: str, value: str) -> int:
    """A whole number, 0 or more (0: off, where the setting says so)."""
    try:
        n = int(value)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {value!r}", setting=name) from None
    if n < 0:
        raise ConfigError(f"{name} must be 0 or more, got {n}", setting=name)
    return n


def _bool(name: str, value: str) -> bool:
    low = value.strip().lower()
    if low in {"1", "true", "yes", "on"}:
        return True
    if low in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"{name} must be true or false, got {value!r}", setting=name)


def parse_listen(name: str, value: str) -> tuple[str, int]:
    """`HOST:PORT` (an IPv6 host in brackets) as (host, port); ConfigError naming `name` otherwise."""
    host, sep, port = value.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"{name} must be HOST:PORT such as 127.0.0.1:8080, got {value!r}", setting=name)
    return host, int(port)


def _url(name: str, value: str) -> str:
    parsed = urlparse(value)
    if parsed.scheme not in {"http", "https"} or not parsed.netloc:
        raise ConfigError(f"{name} must be an http(s) URL, got {value!r}", setting=name)
    return value.rstrip("/")


def _choice(*options: str) -> Callable[[str, str], str]:
    def parse(name: str, value: str) -> str:
        if value not in options:
            raise ConfigError(f"{name} must be one of {', '.join(options)}; got {value!r}", setting=name)
        return value

    return parse


def _anchors(name: str, value: str) -> tuple[str, ...]:
    kinds = tuple(k.strip() for k in value.split(",") if k.strip())
    for k in kinds:
        if k not in {"local", "evm", "rfc3161"}:
            raise ConfigError(f"{name} lists {k!r}; the kinds are local, evm, rfc3161", setting=name)
    if len(set(kinds)) != len(kinds):
        raise ConfigError(f"{name} lists a kind twice: {value!r}", setting=name)
    return kinds


def _origin(name: str, value: str) -> str:
    if not value or any(c.isspace() for c in value) or "+" in value:
        raise ConfigError(
            f"{name} must be a non-empty name without spaces or '+', such as example.org/log; got {value!r}",
            setting=name,
        )
    if value.endswith(AGGREGATE_SUFFIX):  # how the local chain names aggregates' blocks
        raise ConfigError(f"{name} must not end in {AGGREGATE_SUFFIX!r}; got {value!r}", setting=name)
    return value


@dataclass(frozen=True)
class Witness:
    """One entry of WITNESSES: a C2SP tlog-witness's verifier key and its URL."""

    vkey: str
    url: str


def _witnesses(name: str, value: str) -> tuple[Witness, ...]:
    # imported here: the table is read by every command, merkle.note only by those that set witnesses
    from merkle.note import parse_verifier_key

    out: list[Witness] = []
    for item in (i.strip() for i in value.split(",")):
        if not item:
            continue
        vkey, at, url = item.partition("@")
        try:
            if not at:
                raise ValueError("it has no @URL")
            parse_verifier_key(vkey)
            out.append(Witness(vkey, _url(name, url)))
        except (ValueError, ConfigError) as e:
            raise ConfigError(
                f"{name} lists {item[:120]!r}, not a VKEY@URL (a witness's verifier key, @, its "
                f"http(s) URL): {e}",
                setting=name,
            ) from None
    if len({w.vkey for w in out}) != len(out):
        raise ConfigError(f"{name} lists a witness key twice", setting=name)
    return tuple(out)


@dataclass(frozen=True)
class Setting:
    name: str
    default: str | None
    help: str
    parse: Callable[[str, str], Any] = _text


SETTINGS: dict[str, Setting] = {
    s.name: s
    for s in [
        Setting("DATA_DIR", "./notar-data", "keys, RocksDB, and the object store when STORE=fs"),
        Setting("LISTEN", "127.0.0.1:8080", "HOST:PORT of the HTTP server", parse_listen),
        Setting("ORIGIN", "notar.localhost/log", "the log's origin (checkpoint first line)", _origin),
        Setting("STORE", "fs", "object store: fs (a directory) or s3", _choice("fs", "s3")),
        Setting("S3_ENDPOINT", None, "S3 endpoint URL (STORE=s3)", _url),
        Setting("S3_BUCKET", None, "S3 bucket (STORE=s3)"),
        Setting("S3_REGION", "us-east-1", "S3 region"),
        Setting("S3_PREFIX", "", "key prefix inside the bucket"),
        Setting("S3_PATH_STYLE", "true", "path-style S3 addressing (MinIO, SeaweedFS, Ceph)", _bool),
        Setting("BATCH_MS", "100", "the longest a batch waits after its first entry, in ms", _positive_int),
        Setting("BATCH_MIN_MS", "0", "the least a batch waits after its first entry, in ms", _whole),
        Setting(
            "BATCH_MAX", "20000", "entries per batch at most (a full batch is cut at once)", _positive_int
        ),
        Setting("QUEUE_MAX", "200000", "entries waiting at most before new ones get 503", _positive_int),
        Setting("REPEATS_MAX", "100", "notarizations of one digest per tenant at most (0: no cap)", _whole),
        Setting("ANCHORS", "local", "comma-separated anchor kinds: local, evm, rfc3161", _anchors),
        Setting("ANCHOR_INTERVAL_S", "10", "how often the latest checkpoint is anchored", _positive_int),
        Setting("ANCHOR_URL", "http://127.0.0.1:8080", "where ingest pods reach the anchor", _url),
        Setting("LOG_KEY_FILE", None, "log signing key file (default DATA_DIR/keys/log.key)"),
        Setting("CLOCK_KEY_FILE", None, "clock cosigning key file (default DATA_DIR/keys/clock.key)"),
        Setting(
            "INDEX_KEY_FILE",
            None,
            "index key file: keys the tenant index and stored documents; the same on every anchor "
            "and ingest pod (default DATA_DIR/keys/index.key)",
        ),
        Setting("EVM_RPC", None, "EVM JSON-RPC URL", _url),
        Setting("EVM_KEY_FILE", None, "file holding the EVM account's hex private key"),
        Setting("EVM_CONTRACT", None, "address of the NotarAnchor contract"),
        Setting("EVM_CONFIRMATIONS", "1", "blocks on top before an EVM anchor counts", _positive_int),
        Setting("EVM_EXPLORER_URL", None, "block explorer base URL for links on /verify", _url),
        Setting("TSA_URL", None, "RFC 3161 time-stamp authority URL", _url),
        Setting("TSA_CA_FILE", None, "trust anchor (PEM) for the TSA's tokens"),
        Setting(
            "WORKERS",
            "auto",
            "processes serving the HTTP port together (SO_REUSEPORT) in front of the one sequencer; "
            "auto: the CPUs this process may use (its affinity and cgroup CPU quota)",
            _workers,
        ),
        Setting(
            "VERIFY_WORKERS", "1", "processes verifying receipts for POST /v1/verify", _positive_int
        ),
        Setting(
            "VERIFY_QUEUE", "16", "POST /v1/verify requests waiting at most before new ones get 503",
            _positive_int,
        ),
        Setting(
            "TILE_CACHE_MB", "64", "MiB of tiles and entry bundles the verify service keeps in memory "
            "(0: none; files of a directory store are then sent with sendfile)", _whole,
        ),
        Setting("LOG_FORMAT", "text", "log lines: text, or json with trace ids", _choice("text", "json")),
        Setting(
            "READ_TIMEOUT_S",
            "30",
            "seconds a client may take to send a request's head, or leave its body stalled, before "
            "it gets 408 and is cut off (slow clients)",
            _positive_int,
        ),
        Setting(
            "KEY_CACHE_S",
            "30",
            "seconds a server trusts an API key lookup (a revoked key works that long)",
            _positive_int,
        ),
        Setting(
            "DOCUMENT_MAX_MB",
            None,
            "largest document PUT /v1/documents accepts, in MiB (none: any size)",
            _positive_int,
        ),
        Setting(
            "DRAIN_S",
            "10",
            "seconds a stopping server gives requests in flight to finish before it closes them",
            _positive_int,
        ),
        Setting(
            "BACKUP_INTERVAL_S",
            "3600",
            "seconds between backups of the anchor's index to the object store (0: none)",
            _whole,
        ),
        Setting(
            "BACKUP_KEEP", "24", "backups of the anchor's index kept (older ones are deleted)", _positive_int
        ),
        Setting(
            "WITNESSES",
            "",
            "comma-separated C2SP tlog-witnesses as VKEY@URL the anchor submits checkpoints to",
            _witnesses,
        ),
        Setting(
            "WITNESS_QUORUM",
            None,
            "how many of WITNESSES must cosign a checkpoint (default: all of them)",
            _positive_int,
        ),
        Setting(
            "WITNESS_INTERVAL_S",
            "10",
            "the anchor submits its latest checkpoint to the witnesses at most this often, in seconds",
            _positive_int,
        ),
        Setting("SHARDS", "1", "logs (shards) per deployment, each with its own sequencer", _positive_int),
        Setting(
            "SHARD_ORDINAL",
            None,
            "the ordinal of this anchor pod, by which it claims its shard (default: the n of a "
            "StatefulSet HOSTNAME ending in -n)",
            _whole,
        ),
        Setting(
            "SHARD_URL",
            None,
            "where ingest and verify pods reach this anchor's shard (default: http://LISTEN when "
            "LISTEN names one address)",
            _url,
        ),
        Setting(
            "FROZEN_COMPACT_S",
            "86400",
            "seconds between compactions of frozen shards' indexes (erased rows leave their files)",
            _positive_int,
        ),
        Setting(
            "SCITT_WAIT_MS",
            "3000",
            "how long POST /entries waits for a statement's receipt before it answers 303 with a "
            "Location to poll",
            _positive_int,
        ),
        Setting(
            "SCITT_MAX_KB", "1024", "largest signed statement POST /entries accepts, in KiB", _positive_int
        ),
        Setting("URL", "http://127.0.0.1:8080", "where client commands send requests", _url),
        Setting("API_KEY", None, "API key client commands send"),
    ]
}


def read_toml(path: Path) -> dict[str, str]:
    """The settings in a notar.toml; unknown keys and non-scalar values are errors."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ConfigError(f"cannot read {path}: {e.strerror}", setting="CONFIG") from e
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path} is not valid TOML: {e}", setting="CONFIG") from e
    out: dict[str, str] = {}
    for key, value in raw.items():
        name = key.upper()
        if name not in SETTINGS:
            raise ConfigError(f"{path}: unknown setting {key!r}; known: {', '.join(SETTINGS)}", setting=name)
        if isinstance(value, bool):
            out[name] = "true" if value else "false"
        elif isinstance(value, str | int):
            out[name] = str(value)
        elif isinstance(value, list) and all(isinstance(v, str) for v in value):
            out[name] = ",".join(value)
        else:
            raise ConfigError(f"{path}: {key} must be a string or a number", setting=name)
    return out


@dataclass(frozen=True)
class Settings:
    """Every setting, parsed. `get` returns the typed value or None when unset."""

    values: Mapping[str, Any]
    sources: Mapping[str, str]

    def get(self, name: str) -> Any:
        return self.values[name]

    def require(self, name: str, why: str) -> Any:
        value = self.values[name]
        if value is None or value == "":
            raise missing(name, why)
        return value


def unknown_variables(env: Mapping[str, str]) -> list[str]:
    """A warning for each NOTAR_* variable of `env` that is no setting (a typo silently leaves the
    setting at its default), naming the setting it most likely meant."""
    warnings = []
    for variable in sorted(env):
        if _known(variable):
            continue
        name = variable.removeprefix(ENV_PREFIX)
        close = difflib.get_close_matches(name, SETTINGS, n=1, cutoff=0.6)
        hint = f" (did you mean {ENV_PREFIX}{close[0]}?)" if close else ""
        warnings.append(f"unknown setting {variable}{hint}: it is ignored")
    return warnings
def _known(variable: str) -> bool:
    """Not a NOTAR_* variable, or one that is a setting or in OTHER_VARIABLES."""
    name = variable.removeprefix(ENV_PREFIX)
    if name == variable or name in SETTINGS:
        return True
    return any(name == o or (o.endswith("*") and name.startswith(o[:-1])) for o in OTHER_VARIABLES)


def without_unknown(env: Mapping[str, str]) -> dict[str, str]:
    """`env` without the NOTAR_* variables `unknown_variables` warns about (for a child process
    of a command that warned once)."""
    return {k: v for k, v in env.items() if _known(k)}


def missing(name: str, why: str) -> ConfigError:
    """The error for setting `name`, unset though needed `why` (e.g. "when STORE=s3")."""
    return ConfigError(
        f"{name} is required {why}: set {ENV_PREFIX}{name}, --{name.lower().replace('_', '-')} "
        f"or {name} in notar.toml",
        setting=name,
    )


def load_settings(
    *,
    flags: Mapping[str, str | None] | None = None,
    env: Mapping[str, str] | None = None,
    config_file: Path | None = None,
) -> Settings:
    """Merge default < notar.toml < NOTAR_* < flags, then parse each value.

    `config_file` defaults to NOTAR_CONFIG or ./notar.toml when that exists.
    """
    env = dict(env or {})
    if config_file is None:
        named = env.get(ENV_PREFIX + "CONFIG")
        config_file = Path(named) if named else Path("notar.toml")
        if not named and not config_file.exists():
            config_file = None
    file_values = read_toml(config_file) if config_file is not None else {}
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for name, setting in SETTINGS.items():
        raw: str | None = setting.default
        source = "default"
        if name in file_values:
            raw, source = file_values[name], str(config_file)
        if ENV_PREFIX + name in env:
            raw, source = env[ENV_PREFIX + name], ENV_PREFIX + name
        flag = (flags or {}).get(name)
        if flag is not None:
            raw, source = flag, "--" + name.lower().replace("_", "-")
        values[name] = None if raw is None else setting.parse(name, raw)
        sources[name] = source
    return Settings(values, sources)
