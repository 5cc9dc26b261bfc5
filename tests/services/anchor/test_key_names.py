"""The log key's name is the origin and the clock key's `<origin>/clock` (SPEC §2): verifiers
refuse a checkpoint whose origin is not its signer's name, so the anchor refuses to start with keys
named otherwise, naming the file, the name it expects and how to fix it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from merkle.cosignature import CosignatureSigner
from merkle.note import Signer
from services.anchor.keys import generate_keys, key_paths, load_keys
from storage.errors import ConfigError
from tests.serving import free_port

NOTAR = str(Path(sys.executable).with_name("notar"))
ORIGIN = "names.notar.test/log"


def write_key(path: Path, text: str) -> None:
    path.write_text(text + "\n")
    path.chmod(0o600)


def test_keys_named_after_the_origin_load(tmp_path: Path) -> None:
    generate_keys(tmp_path, ORIGIN)
    keys = load_keys(tmp_path, ORIGIN)
    assert keys.log.name == ORIGIN and keys.clock.name == ORIGIN + "/clock"


@pytest.mark.parametrize("which", ["log", "clock"])
def test_a_key_named_otherwise_is_refused_naming_the_file_and_the_name(tmp_path: Path, which: str) -> None:
    generate_keys(tmp_path, ORIGIN)
    log_path, clock_path = key_paths(tmp_path, None, None)
    if which == "log":
        write_key(log_path, Signer.generate("other.example/log").to_key())
        setting, path, expected = "LOG_KEY_FILE", log_path, ORIGIN
    else:
        write_key(clock_path, CosignatureSigner.generate(ORIGIN).to_key())  # the log's name, not /clock
        setting, path, expected = "CLOCK_KEY_FILE", clock_path, ORIGIN + "/clock"
    with pytest.raises(ConfigError) as e:
        load_keys(tmp_path, ORIGIN)
    message = str(e.value)
    assert e.value.setting == setting and str(path) in message and repr(expected) in message
    assert "ORIGIN" in message and "notar keygen" in message


def test_notar_serve_with_another_origin_s_keys_stops_with_one_line(tmp_path: Path) -> None:
    data = tmp_path / "data"
    generate_keys(data, "first.notar.test/log")
    env = {
        **os.environ,
        "NOTAR_DATA_DIR": str(data),
        "NOTAR_ORIGIN": ORIGIN,  # ORIGIN changed under existing keys
        "NOTAR_LISTEN": f"127.0.0.1:{free_port()}",
    }
    run = subprocess.run([NOTAR, "serve"], env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode == 2, run.stdout + run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("notar: LOG_KEY_FILE: "), run.stderr
    assert "'first.notar.test/log'" in lines[0] and f"'{ORIGIN}'" in lines[0]
