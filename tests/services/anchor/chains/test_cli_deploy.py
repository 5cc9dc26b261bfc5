"""`notar anchor deploy` against a real anvil: the address alone on the last line, code deployed."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from services.anchor.chains.evm import artifact
from services.cli import main
from tests.anvil import KEY0, Anvil


def test_deploy_prints_the_address_last(
    anvil: Anvil, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = tmp_path / "evm.key"
    key.write_text("0x" + KEY0 + "\n")
    key.chmod(0o600)
    code = main(["anchor", "deploy", "--evm-rpc", anvil.url, "--evm-key-file", str(key), "--data-dir",
                 str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0
    address = out.splitlines()[-1]
    assert re.fullmatch(r"0x[0-9a-f]{40}", address), out
    assert "on chain 31337" in out
    deployed = asyncio.run(anvil.rpc("eth_getCode", address, "latest"))
    assert deployed == artifact()["deployedBytecode"]


def test_deploy_names_the_missing_setting(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["anchor", "deploy", "--data-dir", str(tmp_path)]) == 2
    assert "EVM_RPC is required to deploy the contract" in capsys.readouterr().err


def test_deploy_refuses_a_bad_key_file(
    anvil: Anvil, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = tmp_path / "evm.key"
    key.write_text("not a key\n")
    key.chmod(0o600)
    assert main(["anchor", "deploy", "--evm-rpc", anvil.url, "--evm-key-file", str(key)]) == 2
    assert "EVM_KEY_FILE" in capsys.readouterr().err
