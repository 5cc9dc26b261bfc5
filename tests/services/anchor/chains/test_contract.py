"""contracts/NotarAnchor.sol: the committed ABI and bytecode are what the pinned solc makes of it,
and what anvil runs after `deploy`."""

from __future__ import annotations

import json
import shutil
import subprocess

from services.anchor.chains.evm import artifact
from tests.anvil import ROOT, Anvil
from tests.needs import missing


def test_committed_artifact_is_what_solc_compiles() -> None:
    if not (ROOT / "node_modules" / "solc").exists() or shutil.which("node") is None:
        missing("npm solc is not installed (run scripts/install --test: it runs npm ci)")
    out = subprocess.run(["node", str(ROOT / "contracts" / "build.mjs")], check=True, capture_output=True,
                         text=True, timeout=120)
    fresh = json.loads(out.stdout)
    assert fresh == artifact(), "run: node contracts/build.mjs > services/anchor/chains/NotarAnchor.json"
    assert fresh["compiler"].startswith("solc 0.8.37+")
    names = {(e["type"], e["name"]) for e in fresh["abi"]}
    assert names == {("function", "anchor"), ("event", "Anchored")}


async def test_deployed_code_is_the_artifact(anvil: Anvil, contract: str) -> None:
    code = await anvil.rpc("eth_getCode", contract, "latest")
    assert code == artifact()["deployedBytecode"]
