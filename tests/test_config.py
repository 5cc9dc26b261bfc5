"""Typed configuration (DESIGN rule 2): `load()` builds every component's frozen config from flags >
NOTAR_* > notar.toml > defaults; a bad value is a ConfigError naming its setting; and no module
outside the config package reads a setting by its name."""

from __future__ import annotations

import ast
import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from merkle.cosignature import CosignatureSigner
from services.common.components import NotarConfig, Wanted, Witness, load
from services.common.config import SETTINGS
from storage.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
CONFIG_PACKAGE = {Path("services/common/config.py"), Path("services/common/components.py")}
CHECKED = ("merkle", "storage", "services", "loadtest")
RAW_LAYER = {"Settings", "load_settings", "SETTINGS"}
RAW_LAYER_USERS = {Path("services/cli/commands.py")}  # one flag per setting, from the table


def _vkey(name: str) -> str:
    return CosignatureSigner.generate(name).verifier().to_key()


W1, W2 = _vkey("w1.example/witness"), _vkey("w2.example/witness")

Read = Callable[[NotarConfig], Any]
# Per setting: three valid raw values (for the file, the environment and the flag), the typed value
# each becomes, and where it lands in the config.
ROWS: dict[str, tuple[Read, list[tuple[str, Any]]]] = {
    "DATA_DIR": (
        lambda c: (c.store.data_dir, c.keys.data_dir, c.chains.evm_journal.parent.parent),
        [(f"/d{i}", (Path(f"/d{i}"),) * 3) for i in range(3)],
    ),
    "LISTEN": (
        lambda c: c.http.listen,
        [("127.0.0.1:1", ("127.0.0.1", 1)), ("[::1]:2", ("::1", 2)), ("h:3", ("h", 3))],
    ),
    "ORIGIN": (
        lambda c: (c.sequencer.origin, c.keys.origin),
        [(f"o{i}.example/log", (f"o{i}.example/log",) * 2) for i in range(3)],
    ),
    "STORE": (lambda c: c.store.store, [("s3", "s3"), ("fs", "fs"), ("s3", "s3")]),
    "S3_ENDPOINT": (
        lambda c: c.store.s3_endpoint,
        [(f"http://s{i}:9000/", f"http://s{i}:9000") for i in range(3)],
    ),
    "S3_BUCKET": (lambda c: c.store.s3_bucket.value, [(f"b{i}", f"b{i}") for i in range(3)]),
    "S3_REGION": (lambda c: c.store.s3_region, [(f"r{i}", f"r{i}") for i in range(3)]),
    "S3_PREFIX": (lambda c: c.store.s3_prefix, [(f"p{i}/", f"p{i}/") for i in range(3)]),
    "S3_PATH_STYLE": (lambda c: c.store.s3_path_style, [("false", False), ("yes", True), ("off", False)]),
    "BATCH_MS": (lambda c: c.sequencer.batch_ms, [("5", 5), ("6", 6), ("7", 7)]),
    "BATCH_MIN_MS": (lambda c: c.sequencer.batch_min_ms, [("5", 5), ("6", 6), ("7", 7)]),
    "BATCH_MAX": (lambda c: c.sequencer.batch_max, [("5", 5), ("6", 6), ("7", 7)]),
    "QUEUE_MAX": (lambda c: c.sequencer.queue_max, [("5", 5), ("6", 6), ("7", 7)]),
    "REPEATS_MAX": (lambda c: c.sequencer.repeats_max, [("0", 0), ("1", 1), ("250", 250)]),
    "ANCHORS": (
        lambda c: c.committer.kinds,
        [("evm", ("evm",)), ("local, rfc3161", ("local", "rfc3161")), ("rfc3161,evm", ("rfc3161", "evm"))],
    ),
    "ANCHOR_INTERVAL_S": (lambda c: c.committer.interval_s, [("1", 1), ("2", 2), ("3", 3)]),
    "ANCHOR_URL": (lambda c: c.http.anchor_url, [(f"http://a{i}:1", f"http://a{i}:1") for i in range(3)]),
    "LOG_KEY_FILE": (lambda c: c.keys.log_key_file, [(f"/k/l{i}", Path(f"/k/l{i}")) for i in range(3)]),
    "CLOCK_KEY_FILE": (lambda c: c.keys.clock_key_file, [(f"/k/c{i}", Path(f"/k/c{i}")) for i in range(3)]),
    "INDEX_KEY_FILE": (
        lambda c: (c.keys.index_key_file, c.keys.index_key_path),
        [(f"/k/i{i}", (Path(f"/k/i{i}"),) * 2) for i in range(3)],
    ),
    "EVM_RPC": (
        lambda c: c.chains.evm_rpc.value,
        [(f"http://e{i}:8545", f"http://e{i}:8545") for i in range(3)],
    ),
    "EVM_KEY_FILE": (
        lambda c: c.chains.evm_key_file.value,
        [(f"/k/e{i}", Path(f"/k/e{i}")) for i in range(3)],
    ),
    "EVM_CONTRACT": (lambda c: c.chains.evm_contract.value, [(f"0x{i}", f"0x{i}") for i in range(3)]),
    "EVM_CONFIRMATIONS": (lambda c: c.chains.evm_confirmations, [("2", 2), ("3", 3), ("4", 4)]),
    "EVM_EXPLORER_URL": (
        lambda c: c.chains.evm_explorer_url,
        [(f"https://x{i}.example", f"https://x{i}.example") for i in range(3)],
    ),
    "TSA_URL": (lambda c: c.chains.tsa_url.value, [(f"http://t{i}/", f"http://t{i}") for i in range(3)]),
    "TSA_CA_FILE": (
        lambda c: c.chains.tsa_ca_file.value,
        [(f"/ca{i}.pem", Path(f"/ca{i}.pem")) for i in range(3)],
    ),
    "LOG_FORMAT": (lambda c: c.http.log_format, [("json", "json"), ("text", "text"), ("json", "json")]),
    "READ_TIMEOUT_S": (lambda c: c.http.read_timeout_s, [("4", 4), ("5", 5), ("6", 6)]),
    "KEY_CACHE_S": (lambda c: c.http.key_cache_s, [("4", 4), ("5", 5), ("6", 6)]),
    "VERIFY_WORKERS": (lambda c: c.http.verify_workers, [("2", 2), ("3", 3), ("4", 4)]),
    "WORKERS": (lambda c: c.http.workers, [("2", 2), ("3", 3), ("auto", None)]),
    "VERIFY_QUEUE": (lambda c: c.http.verify_queue, [("7", 7), ("8", 8), ("9", 9)]),
    "TILE_CACHE_MB": (lambda c: c.http.tile_cache_mb, [("0", 0), ("1", 1), ("256", 256)]),
    "DOCUMENT_MAX_MB": (
        lambda c: (c.http.document_max_mb, c.http.document_max_bytes),
        [(str(i), (i, i << 20)) for i in (1, 2, 3)],
    ),
    "DRAIN_S": (lambda c: c.http.drain_s, [("1", 1), ("2", 2), ("30", 30)]),
    "BACKUP_INTERVAL_S": (lambda c: c.backups.interval_s, [("0", 0), ("60", 60), ("7200", 7200)]),
    "BACKUP_KEEP": (lambda c: c.backups.keep, [("1", 1), ("2", 2), ("48", 48)]),
    "WITNESSES": (
        lambda c: (c.witnesses.witnesses, c.witnesses.quorum),
        [
            (f"{W1}@http://w1:1", ((Witness(W1, "http://w1:1"),), 1)),
            (
                f"{W1}@http://w1:1/, {W2}@https://w2",
                ((Witness(W1, "http://w1:1"), Witness(W2, "https://w2")), 2),
            ),
            (f"{W2}@http://w2:2", ((Witness(W2, "http://w2:2"),), 1)),
        ],
    ),
    "WITNESS_INTERVAL_S": (lambda c: c.witnesses.interval_s, [("1", 1), ("2", 2), ("30", 30)]),
    "SHARDS": (lambda c: c.shards.count, [("2", 2), ("4", 4), ("16", 16)]),
    "SHARD_ORDINAL": (lambda c: c.shards.ordinal.value, [("0", 0), ("3", 3), ("12", 12)]),
    "SHARD_URL": (
        lambda c: c.shards.url.value,
        [
            (f"http://notar-anchor-{i}.notar-anchor:8080/", f"http://notar-anchor-{i}.notar-anchor:8080")
            for i in range(3)
        ],
    ),
    "FROZEN_COMPACT_S": (lambda c: c.shards.frozen_compact_s, [("60", 60), ("3600", 3600), ("7", 7)]),
    "SCITT_WAIT_MS": (
        lambda c: (c.scitt.wait_ms, c.scitt.wait_s),
        [("1", (1, 0.001)), ("2500", (2500, 2.5)), ("7", (7, 0.007))],
    ),
    "SCITT_MAX_KB": (
        lambda c: (c.scitt.max_kb, c.scitt.max_bytes),
        [(str(i), (i, i * 1024)) for i in (1, 2, 3)],
    ),
    "URL": (lambda c: c.client.url, [(f"https://n{i}.example/", f"https://n{i}.example") for i in range(3)]),
    "API_KEY": (lambda c: c.client.api_key.value, [(f"key{i}", f"key{i}") for i in range(3)]),
}
SKIPPED = {"WITNESS_QUORUM"}  # it needs WITNESSES: test_the_witness_quorum


def test_every_setting_has_its_row() -> None:
    assert set(ROWS) | SKIPPED == set(SETTINGS)


@pytest.mark.parametrize("name", sorted(ROWS))
def test_each_setting_reaches_its_component_with_flag_over_env_over_file(name: str, tmp_path: Path) -> None:
    read, values = ROWS[name]
    (file_raw, file_typed), (env_raw, env_typed), (flag_raw, flag_typed) = values
    toml = tmp_path / "notar.toml"
    toml.write_text(f"{name.lower()} = {file_raw!r}\n".replace("'", '"'))
    env = {f"NOTAR_{name}": env_raw}
    default = read(load(env={}, config_file=None))
    assert read(load(env={}, config_file=toml)) == file_typed != default
    assert read(load(env=env, config_file=toml)) == env_typed
    assert read(load(flags={name: flag_raw}, env=env, config_file=toml)) == flag_typed
    assert read(load(flags={name: None}, env=env, config_file=toml)) == env_typed  # no flag given


def test_the_defaults() -> None:
    c = load(env={}, config_file=None)
    assert (c.store.store, c.store.data_dir, c.store.s3_path_style) == ("fs", Path("notar-data"), True)
    assert (c.sequencer.origin, c.sequencer.batch_ms, c.sequencer.batch_max) == (
        "notar.localhost/log",
        100,
        20_000,
    )
    assert (c.committer.kinds, c.committer.interval_s) == (("local",), 10)
    assert c.keys.index_key_path == Path("notar-data/keys/index.key")
    assert (c.http.listen, c.http.document_max_bytes) == (("127.0.0.1", 8080), 0)
    assert (c.http.verify_workers, c.http.verify_queue) == (1, 16)
    assert c.http.workers is None  # WORKERS=auto: the CPUs this process may use
    assert c.witnesses == dataclasses.replace(c.witnesses, witnesses=(), quorum=0, interval_s=10)
    assert c.shards.count == 1 and c.client.api_key.value is None


def test_the_config_file_is_named_by_notar_config(tmp_path: Path) -> None:
    toml = tmp_path / "other.toml"
    toml.write_text('shards = 3\nanchors = ["local", "evm"]\n')
    c = load(env={"NOTAR_CONFIG": str(toml)})
    assert (c.shards.count, c.committer.kinds) == (3, ("local", "evm"))


def test_the_witness_quorum() -> None:
    both = f"{W1}@http://w1, {W2}@http://w2"
    assert load(flags={"WITNESSES": both, "WITNESS_QUORUM": "1"}, env={}).witnesses.quorum == 1
    assert load(env={"NOTAR_WITNESSES": both}).witnesses.quorum == 2
    with pytest.raises(ConfigError, match="WITNESS_QUORUM is 3 but WITNESSES lists 2") as e:
        load(flags={"WITNESSES": both, "WITNESS_QUORUM": "3"}, env={})
    assert e.value.setting == "WITNESS_QUORUM"


BAD = [
    ("LISTEN", "8080"),
    ("LISTEN", "host:99999"),
    ("ORIGIN", "has space"),
    ("ORIGIN", "a+b"),
    ("ORIGIN", "example.org/aggregate"),
    ("STORE", "ftp"),
    ("S3_ENDPOINT", "s3.example"),
    ("S3_PATH_STYLE", "maybe"),
    ("BATCH_MS", "fast"),
    ("BATCH_MAX", "0"),
    ("QUEUE_MAX", "-1"),
    ("REPEATS_MAX", "-1"),
    ("ANCHORS", "local,bitcoin"),
    ("ANCHORS", "evm,evm"),
    ("ANCHOR_INTERVAL_S", "1.5"),
    ("ANCHOR_URL", "anchor:8080"),
    ("EVM_RPC", "ws://node"),
    ("EVM_CONFIRMATIONS", "0"),
    ("TSA_URL", "tsa"),
    ("LOG_FORMAT", "xml"),
    ("READ_TIMEOUT_S", "never"),
    ("KEY_CACHE_S", "0"),
    ("DOCUMENT_MAX_MB", "1e3"),
    ("WITNESSES", "http://w1"),
    ("WITNESSES", f"{W1}@w1:80"),
    ("WITNESSES", "w1.example+00000000+AAAA@http://w1"),
    ("WITNESSES", f"{W1}@http://a, {W1}@http://b"),
    ("WITNESS_QUORUM", "0"),
    ("WITNESS_INTERVAL_S", "soon"),
    ("SHARDS", "0"),
    ("SHARDS", "two"),
    ("URL", "localhost:8080"),
]


@pytest.mark.parametrize(("name", "value"), BAD)
@pytest.mark.parametrize("where", ["flag", "env", "file"])
def test_a_bad_value_is_a_config_error_naming_its_setting(
    name: str, value: str, where: str, tmp_path: Path
) -> None:
    toml = tmp_path / "notar.toml"
    toml.write_text(f'{name.lower()} = "{value}"\n' if where == "file" else "")
    with pytest.raises(ConfigError) as e:
        load(
            flags={name: value} if where == "flag" else {},
            env={f"NOTAR_{name}": value} if where == "env" else {},
            config_file=toml,
        )
    assert e.value.setting == name and name in str(e.value)


def test_an_unknown_key_in_the_file_is_refused(tmp_path: Path) -> None:
    toml = tmp_path / "notar.toml"
    toml.write_text("shard = 2\n")
    with pytest.raises(ConfigError, match="unknown setting 'shard'"):
        load(env={}, config_file=toml)


def test_a_setting_needed_only_by_some_uses_is_asked_for_where_it_is_needed() -> None:
    c = load(flags={"STORE": "s3", "ANCHORS": "evm"}, env={})  # loads: not every role needs them
    with pytest.raises(
        ConfigError, match=r"S3_BUCKET is required when STORE=s3: set NOTAR_S3_BUCKET, --s3-bucket"
    ):
        c.store.s3_bucket.need("when STORE=s3")
    with pytest.raises(ConfigError) as e:
        c.chains.evm_rpc.need("with ANCHORS=evm")
    assert e.value.setting == "EVM_RPC"
    assert Wanted("API_KEY", "k").need("to notarize") == "k"
    with pytest.raises(ConfigError):
        Wanted("API_KEY", "").need("to notarize")


def test_the_configs_are_frozen() -> None:
    c = load(env={}, config_file=None)
    for part in (
        c,
        c.store,
        c.sequencer,
        c.committer,
        c.chains,
        c.keys,
        c.http,
        c.client,
        c.witnesses,
        c.shards,
    ):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(part, dataclasses.fields(part)[0].name, None)


# -- no module reads a setting by name outside the config package ------------------------------


def reads_by_name(source: str) -> list[str]:
    """Where `source` reads a setting by its name: `x.get("NAME")`, `x.require("NAME", …)`,
    `x["NAME"]` with NAME a setting, or an import of the raw layer (Settings, load_settings, SETTINGS)."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        key: ast.expr | None = None
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args:
            if node.func.attr in {"get", "require"}:
                key = node.args[0]
        elif isinstance(node, ast.Subscript):
            key = node.slice
        if isinstance(key, ast.Constant) and key.value in SETTINGS:
            found.append(f"line {key.lineno}: reads {key.value} by name")
        if isinstance(node, ast.ImportFrom) and node.module == "services.common.config":
            found += [f"line {node.lineno}: imports {a.name}" for a in node.names if a.name in RAW_LAYER]
    return found


def test_the_check_finds_reads_by_name() -> None:
    assert len(reads_by_name('s.get("ORIGIN")\ns.require("S3_BUCKET", "x")\nv["BATCH_MS"]')) == 3
    assert reads_by_name("from services.common.config import Settings, missing") == [
        "line 1: imports Settings"
    ]
    assert reads_by_name('env.get("AWS_ACCESS_KEY_ID")\nheaders["Retry-After"]\nc.sequencer.origin') == []


def test_no_module_outside_the_config_package_reads_settings_by_name() -> None:
    offenders = []
    for top in CHECKED:
        for path in sorted((ROOT / top).rglob("*.py")):
            rel = path.relative_to(ROOT)
            if rel in CONFIG_PACKAGE or ".venv" in rel.parts:
                continue
            for finding in reads_by_name(path.read_text(encoding="utf-8")):
                if rel in RAW_LAYER_USERS and finding.endswith("imports SETTINGS"):
                    continue
                offenders.append(f"{rel} {finding}")
    assert not offenders, "use the component configs of services.common.components.load():\n" + "\n".join(
        offenders
    )
