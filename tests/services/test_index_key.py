"""The index key (services/common/index_key.py): a 0600 file of 64 hex digits, made by
`notar keygen` and by `notar serve` (all roles, anchor), never by an ingest pod, refused when
others can read it or when it is not a key, and never printed."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from services.common.components import KeysConfig, load
from services.common.index_key import create_index_key, ensure_index_key, load_index_key
from storage.errors import ConfigError

NOTAR = str(Path(sys.executable).with_name("notar"))


def settings(data: Path, **flags: str) -> KeysConfig:
    return load(flags={"DATA_DIR": str(data), **flags}, env={}, config_file=None).keys


def test_made_once_private_and_read_back(tmp_path: Path) -> None:
    s = settings(tmp_path / "data")
    made = ensure_index_key(s)
    assert made == tmp_path / "data" / "keys" / "index.key" == s.index_key_path
    assert stat.S_IMODE(made.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "data").stat().st_mode) == 0o700
    key = load_index_key(s)
    assert len(key) == 32 and made.read_text() == key.hex() + "\n"
    assert ensure_index_key(s) is None and load_index_key(s) == key
    elsewhere = tmp_path / "secret" / "index.key"
    assert ensure_index_key(settings(tmp_path / "data", INDEX_KEY_FILE=str(elsewhere))) == elsewhere


def test_refused_when_others_can_read_it_or_it_is_not_a_key(tmp_path: Path) -> None:
    s = settings(tmp_path)
    with pytest.raises(ConfigError, match=r"INDEX_KEY_FILE: no index key at .*notar keygen"):
        load_index_key(s)
    path = ensure_index_key(s)
    assert path is not None
    key = path.read_text().strip()
    path.chmod(0o640)
    with pytest.raises(ConfigError, match="readable by others; run chmod 600") as refused:
        load_index_key(s)
    assert key not in str(refused.value)
    path.chmod(0o600)
    for text in ("ab" * 31, "zz" * 32, "ab" * 33, ""):
        path.write_text(text + "\n")
        with pytest.raises(ConfigError, match="64 hex digits") as refused:
            load_index_key(s)
        assert text not in str(refused.value) or not text
        assert refused.value.setting == "INDEX_KEY_FILE"


def test_two_processes_starting_at_once_read_the_same_whole_key(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "index.key"
    with ThreadPoolExecutor(8) as pool:
        made = list(pool.map(lambda _: create_index_key(path), range(8)))
    assert made.count(True) == 1 and len(path.read_text()) == 65
    assert [p.name for p in path.parent.iterdir()] == ["index.key"]  # no temporary file left


def test_keygen_makes_it_and_an_ingest_pod_without_it_stops_saying_why(tmp_path: Path) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("NOTAR_")},
        "NOTAR_DATA_DIR": str(tmp_path / "ingest"),
        "NOTAR_LISTEN": "127.0.0.1:1",
    }
    run = subprocess.run(
        [NOTAR, "serve", "--role", "ingest"], env=env, capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 2, run
    assert run.stderr.strip().count("\n") == 0 and "INDEX_KEY_FILE" in run.stderr
    assert not (tmp_path / "ingest" / "keys" / "index.key").exists()
    env["NOTAR_DATA_DIR"] = str(tmp_path / "keygen")
    out = subprocess.run([NOTAR, "keygen"], env=env, capture_output=True, text=True, timeout=60, check=True)
    key = (tmp_path / "keygen" / "keys" / "index.key").read_text().strip()
    assert "index.key (mode 0600)" in out.stdout and key not in out.stdout + out.stderr
