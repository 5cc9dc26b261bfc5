// Builds noble.js, the one vendored module of the web verifier, from the exact npm packages pinned
// in the repository's package.json / package-lock.json: @noble/hashes (BLAKE3, SHA-256) and
// @noble/curves (Ed25519), bundled by esbuild into one readable (not minified) ES module.
//
//   npm ci && node services/verify/static/vendor/build.mjs           # rewrite noble.js
//   node services/verify/static/vendor/build.mjs --check             # exit 1 if noble.js differs
//
// Deterministic: the same packages give the same bytes (tests/services/verify checks this).
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, "..", "..", "..", "..");
const pkg = (name) => JSON.parse(readFileSync(join(root, "node_modules", name, "package.json"), "utf8"));
const lock = JSON.parse(readFileSync(join(root, "package-lock.json"), "utf8")).packages;
const names = ["@noble/hashes", "@noble/curves", "esbuild"];
const pinned = names.map((n) => {
  const have = pkg(n).version;
  const want = lock[`node_modules/${n}`]?.version;
  if (have !== want) throw new Error(`${n}: node_modules has ${have}, package-lock.json pins ${want}: run npm ci`);
  return `${n}@${have} (${lock[`node_modules/${n}`].integrity})`;
});

const banner = `// Vendored for notar's web verifier: DO NOT EDIT, rebuild with services/verify/static/vendor/build.mjs.
// From ${pinned[0]}
// and  ${pinned[1]}, bundled by ${pinned[2].split(" ")[0]}.
// noble-hashes and noble-curves: MIT License, Copyright (c) 2022 Paul Miller (https://paulmillr.com);
// the full text is LICENSE-noble next to this file.`;

const out = await build({
  stdin: {
    contents: [
      'export { blake3 } from "@noble/hashes/blake3.js";',
      'export { sha256 } from "@noble/hashes/sha2.js";',
      'export { ed25519 } from "@noble/curves/ed25519.js";',
    ].join("\n"),
    resolveDir: root,
    sourcefile: "noble-entry.js",
  },
  absWorkingDir: root,
  bundle: true,
  format: "esm",
  platform: "browser",
  target: "es2022",
  charset: "utf8",
  legalComments: "inline",
  banner: { js: banner },
  write: false,
  logLevel: "error",
});
const text = out.outputFiles[0].text;
const target = join(here, "noble.js");
if (process.argv.includes("--check")) {
  if (readFileSync(target, "utf8") !== text) {
    console.error(`${target} is not what the pinned packages build: run node ${join("services/verify/static/vendor/build.mjs")}`);
    process.exit(1);
  }
  console.log("noble.js matches the pinned packages");
} else {
  writeFileSync(target, text);
  console.log(`wrote ${target} (${text.length} characters)`);
}
