// Runs the web verifier's checks (services/verify/static/receipt.js) under Node, without a browser:
//
//   node tests/services/verify/receipt_node.mjs ITEMS.json VERDICTS.json
//
// ITEMS.json is [{id, receipt: path, document: path or null, keys: [verifier key…], policy: a
// tlog-policy text or a /v1/keys document's JSON text, optional, in place of keys, tsa_ca: PEM
// path or null}]; each receipt is read as the page reads a file (UTF-8, the byte-order mark kept,
// parseJson), its document hashed with the receipt's algorithm as the page hashes it (hashBlob),
// then verifyReceipt, with the TSA CA certificates when one is named (WebCrypto, as in a browser). The
// verdicts ({id: {valid, checks: [[name, status]…]}}) are compared with merkle's by
// test_receipt_js.py. The page's modules are imported as the page imports them: the bare names of
// its import map ("notar-noble", "notar-receipt"…) stand for the files services/verify/page.py inlines.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const STATIC = resolve(dirname(fileURLToPath(import.meta.url)), "../../../services/verify/static");
// The modules of the page's import map (services/verify/page.py MODULES).
const MODULES = {
  "notar-noble": "vendor/noble.js",
  "notar-json": "json.js",
  "notar-log": "log.js",
  "notar-der": "der.js",
  "notar-x509": "x509.js",
  "notar-timestamp": "timestamp.js",
  "notar-trust": "trust.js",
  "notar-receipt": "receipt.js",
  "notar-timeline": "timeline.js",
};

/** Copies of the page's modules whose bare imports name the copies, in a temporary folder. */
function importMap(dir) {
  const urls = {};
  for (const name of Object.keys(MODULES)) urls[name] = pathToFileURL(join(dir, `${name}.mjs`)).href;
  for (const [name, file] of Object.entries(MODULES)) {
    let source = readFileSync(join(STATIC, file), "utf8");
    for (const [other, url] of Object.entries(urls)) source = source.replaceAll(`from "${other}"`, `from ${JSON.stringify(url)}`);
    writeFileSync(join(dir, `${name}.mjs`), source);
  }
  return urls;
}

const dir = mkdtempSync(join(tmpdir(), "notar-receipt-js-"));
try {
  const m = await import(importMap(dir)["notar-receipt"]);
  const items = JSON.parse(readFileSync(process.argv[2], "utf8"));
  const out = {};
  for (const item of items) {
    let value;
    try {
      value = m.parseJson(new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(readFileSync(item.receipt)));
    } catch (e) {
      out[item.id] = { valid: false, checks: [["format", "failed"]], detail: e.message };
      continue;
    }
    let digest = null;
    if (item.document) {
      let algorithm = null;
      try {
        algorithm = m.parseReceipt(value).digest.algorithm;
      } catch {
        algorithm = null;
      }
      if (algorithm) digest = await m.hashBlob(new Blob([readFileSync(item.document)]), algorithm);
    }
    let keys = item.keys.map(m.parseVerifierKey);
    if (item.policy) {
      try {
        keys = item.policy.trim().startsWith("{") ? m.trustOfDocument(JSON.parse(item.policy)) : m.trustOfPolicy(item.policy);
      } catch (e) {
        out[item.id] = { error: e.message };
        continue;
      }
    }
    const tsaCas = item.tsa_ca ? m.parsePemCertificates(readFileSync(item.tsa_ca, "utf8")) : null;
    const r = await m.verifyReceipt(value, { keys, documentDigest: digest, tsaCas });
    out[item.id] = { valid: r.valid, checks: r.checks.map((c) => [c.name, c.status]), detail: r.checks.find((c) => c.status === "failed")?.detail ?? null, details: r.checks.map((c) => c.detail) };
  }
  writeFileSync(process.argv[3], JSON.stringify(out));
} finally {
  rmSync(dir, { recursive: true, force: true });
}
