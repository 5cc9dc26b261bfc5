// Compiles contracts/NotarAnchor.sol with the pinned npm solc and prints the artifact as JSON.
// The committed artifact is services/anchor/chains/NotarAnchor.json; regenerate it with
//   node contracts/build.mjs > services/anchor/chains/NotarAnchor.json
// tests/services/anchor/chains/test_contract.py recompiles and compares.
// evmVersion paris (no PUSH0) so that the bytecode runs on L2s and consortium chains too.
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const solc = require("solc");
const here = dirname(fileURLToPath(import.meta.url));
const source = readFileSync(join(here, "NotarAnchor.sol"), "utf8");
const settings = {
  optimizer: { enabled: true, runs: 200 },
  evmVersion: "paris",
  outputSelection: { "*": { "*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"] } },
};
const input = { language: "Solidity", sources: { "NotarAnchor.sol": { content: source } }, settings };
const output = JSON.parse(solc.compile(JSON.stringify(input)));
const errors = (output.errors || []).filter((e) => e.severity === "error");
if (errors.length) {
  for (const e of errors) console.error(e.formattedMessage);
  process.exit(1);
}
const c = output.contracts["NotarAnchor.sol"].NotarAnchor;
const artifact = {
  contract: "NotarAnchor",
  compiler: "solc " + solc.version(),
  settings: { optimizer: settings.optimizer, evmVersion: settings.evmVersion },
  abi: c.abi,
  bytecode: "0x" + c.evm.bytecode.object,
  deployedBytecode: "0x" + c.evm.deployedBytecode.object,
};
process.stdout.write(JSON.stringify(artifact, null, 2) + "\n");
