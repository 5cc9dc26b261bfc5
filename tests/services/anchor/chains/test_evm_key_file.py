"""EVM_KEY_FILE is refused when group or others may read it, as the log's signing keys are.

Regression: load_account read the EVM account's private key from a file of any mode, while
notar refuses world-readable log and clock keys (SECURITY.md, key handling).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from services.anchor.chains.evm import load_account
from services.cli import main
from storage.errors import ConfigError
from tests.anvil import KEY0

ANVIL_ACCOUNT0 = "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266"


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_a_key_file_others_can_read_is_refused(tmp_path: Path, mode: int) -> None:
    key = tmp_path / "evm.key"
    key.write_text(KEY0 + "\n")
    key.chmod(mode)
    with pytest.raises(ConfigError, match="readable by others; run chmod 600") as e:
        load_account(key)
    assert e.value.setting == "EVM_KEY_FILE"
    assert KEY0 not in str(e.value)


@pytest.mark.parametrize("mode", [0o600, 0o400])
def test_a_private_key_file_loads(tmp_path: Path, mode: int) -> None:
    key = tmp_path / "evm.key"
    key.write_text("0x" + KEY0 + "\n")
    key.chmod(mode)
    assert load_account(key).address.lower() == ANVIL_ACCOUNT0


def test_deploy_stops_before_any_rpc_call(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    key = tmp_path / "evm.key"
    key.write_text(KEY0 + "\n")
    key.chmod(0o644)
    # port 9 (discard) on loopback: the command must stop on the key file before calling it
    assert main(["anchor", "deploy", "--evm-rpc", "http://127.0.0.1:9", "--evm-key-file", str(key)]) == 2
    err = capsys.readouterr().err
    assert "EVM_KEY_FILE" in err and "chmod 600" in err and KEY0 not in err
