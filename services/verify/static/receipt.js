// notar receipt verification in the browser (SPEC §5): a port of merkle/receipt.py, check for check.
//
// Every check has the name and the outcome that `notar verify` gives for the same receipt, keys and
// document (tests/services/verify/test_web_verifier.py compares them on a corpus). Parsing is as
// strict as merkle/: receipt fields, signed notes (C2SP signed-note), checkpoints (C2SP
// tlog-checkpoint), verifier keys, cosignatures (C2SP tlog-cosignature/v1), RFC 9162 inclusion
// proofs and local anchor blocks. Nothing here touches the DOM or the network.

import { blake3, ed25519, sha256 } from "notar-noble";

export const RECEIPT_FORMAT = "notar.receipt.v1";
const SIG_ED25519 = 0x01;
const SIG_COSIGNATURE_V1 = 0x04;
const MAX_SIGNATURES = 100;
const MAX_TREE_SIZE = (1n << 63n) - 1n;
const MAX_TIMESTAMP = (1n << 63n) - 1n;
const DASH = "\u2014 ";
const LOCAL_PREFIX = "notar.local-anchor.v1\n";
const LOCAL_FIELDS = ["height", "prev", "time", "origin", "tree_size", "root", "sig"];

const HEX = /^(?:[0-9a-f]{2})*$/;
const HASH_HEX = /^[0-9a-f]{64}$/;
const DIGEST = /^(blake3|sha256):([0-9a-f]{64})$/;
const DECIMAL = /^(?:0|[1-9][0-9]{0,18})$/;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const HEX_KEY_ID = /^[0-9a-f]{8}$/;
const CONTROL = /[\x00-\x09\x0b-\x1f]/;
// Python's str.isspace(), which merkle/note.py uses for key names.
const PY_SPACE = /[\t\n\v\f\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]/;
const MULTIHASH = { 0x1e: "blake3", 0x12: "sha256" };
const CODES = { blake3: 0x1e, sha256: 0x12 };

const utf8 = new TextEncoder();

// ---------------------------------------------------------------------------------------------
// Strict JSON, as orjson reads it: integers stay integers (BigInt beyond 2^53), numbers with a
// fraction or an exponent are JsonFloat (Python floats, never ints), objects have no prototype;
// and, as notar verify reads a receipt, no object names a member twice.

export class JsonFloat {
  constructor(value) {
    this.value = value;
  }
}

export function parseJson(text) {
  let i = 0;
  const n = text.length;
  const fail = (why) => {
    throw new SyntaxError(`${why} at character ${i}`);
  };
  const ws = () => {
    while (i < n) {
      const c = text.charCodeAt(i);
      if (c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d) i++;
      else break;
    }
  };
  const value = (depth) => {
    if (depth > 1024) fail("nested too deep");
    ws();
    const c = text[i];
    if (c === "{") return object(depth);
    if (c === "[") return array(depth);
    if (c === '"') return string();
    if (c === "-" || (c >= "0" && c <= "9")) return number();
    for (const [word, v] of [["true", true], ["false", false], ["null", null]]) {
      if (text.startsWith(word, i)) {
        i += word.length;
        return v;
      }
    }
    return fail("unexpected character");
  };
  const object = (depth) => {
    const out = Object.create(null);
    i++;
    ws();
    if (text[i] === "}") {
      i++;
      return out;
    }
    for (;;) {
      ws();
      if (text[i] !== '"') fail("expected a string key");
      const key = string();
      // JSON.parse, like orjson, keeps the last of a member named twice, and other tools may
      // read the first: such a receipt is refused, as notar verify and POST /v1/verify do.
      if (key in out) fail(`the member ${repr(key.slice(0, 100))} appears twice in one object`);
      ws();
      if (text[i] !== ":") fail("expected ':'");
      i++;
      out[key] = value(depth + 1);
      ws();
      if (text[i] === ",") i++;
      else if (text[i] === "}") {
        i++;
        return out;
      } else fail("expected ',' or '}'");
    }
  };
  const array = (depth) => {
    const out = [];
    i++;
    ws();
    if (text[i] === "]") {
      i++;
      return out;
    }
    for (;;) {
      out.push(value(depth + 1));
      ws();
      if (text[i] === ",") i++;
      else if (text[i] === "]") {
        i++;
        return out;
      } else fail("expected ',' or ']'");
    }
  };
  const string = () => {
    i++;
    let out = "";
    let run = i;
    for (;;) {
      if (i >= n) fail("unterminated string");
      const c = text.charCodeAt(i);
      if (c === 0x22) {
        out += text.slice(run, i);
        i++;
        break;
      }
      if (c < 0x20) fail("control character in a string");
      if (c >= 0xd800 && c <= 0xdfff) {
        const pair = c <= 0xdbff && i + 1 < n && text.charCodeAt(i + 1) >= 0xdc00 && text.charCodeAt(i + 1) <= 0xdfff;
        if (!pair) fail("lone surrogate in a string");
        i += 2;
        continue;
      }
      if (c !== 0x5c) {
        i++;
        continue;
      }
      out += text.slice(run, i);
      const e = text[i + 1];
      const simple = { '"': '"', "\\": "\\", "/": "/", b: "\b", f: "\f", n: "\n", r: "\r", t: "\t" }[e];
      if (simple !== undefined) {
        out += simple;
        i += 2;
      } else if (e === "u") {
        const unit = (at) => {
          const h = text.slice(at, at + 4);
          if (!/^[0-9a-fA-F]{4}$/.test(h)) fail("bad \\u escape");
          return parseInt(h, 16);
        };
        const u = unit(i + 2);
        i += 6;
        if (u >= 0xd800 && u <= 0xdbff && text[i] === "\\" && text[i + 1] === "u") {
          const low = unit(i + 2);
          if (low < 0xdc00 || low > 0xdfff) fail("lone surrogate escape");
          out += String.fromCharCode(u, low);
          i += 6;
        } else if (u >= 0xd800 && u <= 0xdfff) {
          fail("lone surrogate escape");
        } else {
          out += String.fromCharCode(u);
        }
      } else {
        fail("bad escape");
      }
      run = i;
    }
    return out;
  };
  const number = () => {
    const m = /^-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/.exec(text.slice(i, i + 400));
    if (!m) fail("bad number");
    i += m[0].length;
    if (m[1] !== undefined || m[2] !== undefined) {
      const f = Number(m[0]);
      if (!Number.isFinite(f)) fail("number out of range");
      return new JsonFloat(f);
    }
    const big = BigInt(m[0]);
    if (big < -(1n << 63n) || big > (1n << 64n) - 1n) fail("integer exceeds 64-bit range");
    return Number.isSafeInteger(Number(big)) ? Number(big) : big;
  };
  const v = value(0);
  ws();
  if (i !== n) fail("trailing data");
  return v;
}

// ---------------------------------------------------------------------------------------------
// Small helpers.

const isStr = (v) => typeof v === "string";
const isInt = (v) => (typeof v === "number" && Number.isInteger(v)) || typeof v === "bigint";
const isObj = (v) => v !== null && typeof v === "object" && !Array.isArray(v) && !(v instanceof JsonFloat);
const has = (o, k) => Object.prototype.hasOwnProperty.call(o, k);
const big = (v) => BigInt(v);

/** Python's `==` between a JSON value and an integer (True == 1, 5.0 == 5). */
function pyEqualsInt(v, n) {
  if (typeof v === "boolean") return big(v ? 1 : 0) === n;
  if (isInt(v)) return big(v) === n;
  if (v instanceof JsonFloat) return Number.isInteger(v.value) && BigInt(v.value) === n;
  return false;
}

export function hex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

export function fromHex(text) {
  const out = new Uint8Array(text.length / 2);
  for (let k = 0; k < out.length; k++) out[k] = parseInt(text.slice(2 * k, 2 * k + 2), 16);
  return out;
}

function concat(...parts) {
  const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function equalBytes(a, b) {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let k = 0; k < a.length; k++) d |= a[k] ^ b[k];
  return d === 0;
}

function b64encode(bytes) {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s);
}

/** Standard padded base64 whose re-encoding gives `text` back (merkle.note.b64decode_canonical). */
export function b64decodeCanonical(text) {
  if (!isStr(text) || !BASE64.test(text)) throw new Error(`not standard padded base64: ${repr(String(text).slice(0, 80))}`);
  const raw = Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
  if (b64encode(raw) !== text) throw new Error(`non-canonical base64 (padding bits set): ${repr(text.slice(0, 80))}`);
  return raw;
}

function repr(v) {
  return typeof v === "string" ? `'${v}'` : String(v);
}

function u32(bytes) {
  return ((bytes[0] << 24) | (bytes[1] << 16) | (bytes[2] << 8) | bytes[3]) >>> 0;
}

function u64(bytes) {
  let v = 0n;
  for (const b of bytes) v = (v << 8n) | BigInt(b);
  return v;
}

export function formatTime(ts) {
  const t = big(ts);
  if (t > 253402300799n) return `${t} seconds after 1970-01-01T00:00:00Z`;
  return new Date(Number(t) * 1000).toISOString().replace(/\.\d{3}Z$/, "Z");
}

// ---------------------------------------------------------------------------------------------
// Digests and entries (merkle/digests.py), RFC 9162 hashing and inclusion (merkle/proofs.py).

export function parseDigest(text) {
  if (!isStr(text)) throw new Error("a digest must be a string like blake3:<64 lowercase hex>");
  const m = DIGEST.exec(text);
  if (!m) throw new Error(`not a digest: ${repr(text.slice(0, 80))}; expected blake3:<64 lowercase hex> or sha256:<64 lowercase hex>`);
  return { algorithm: m[1], value: fromHex(m[2]), text };
}

function parseEntry(entry) {
  if (entry.length < 34) throw new Error("a multihash needs at least 34 bytes");
  const name = MULTIHASH[entry[0]];
  if (name === undefined || entry[1] !== 32) throw new Error(`unsupported multihash code 0x${entry[0].toString(16).padStart(2, "0")} length ${entry[1]}`);
  const salt = entry.subarray(34);
  if (salt.length !== 0 && salt.length !== 16) throw new Error(`a log entry's salt is 16 bytes or empty, got ${salt.length}`);
  return { digest: `${name}:${hex(entry.subarray(2, 34))}`, salt };
}

export function leafHash(entry) {
  return sha256(concat(Uint8Array.of(0), entry));
}

/** RFC 9162 §2.1.3.2, exactly as merkle.proofs._inclusion_root; throws when the proof cannot fit. */
export function rootFromInclusion(leaf, index, size, proof) {
  let fn = big(index);
  let sn = big(size) - 1n;
  if (big(index) >= big(size)) throw new Error(`index ${index} is outside a tree of size ${size}`);
  let r = leaf;
  for (const p of proof) {
    if (sn === 0n) throw new Error("inclusion proof is too long");
    if (fn & 1n || fn === sn) {
      r = sha256(concat(Uint8Array.of(1), p, r));
      if (!(fn & 1n)) {
        while (fn && !(fn & 1n)) {
          fn >>= 1n;
          sn >>= 1n;
        }
      }
    } else {
      r = sha256(concat(Uint8Array.of(1), r, p));
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  if (sn !== 0n) throw new Error("inclusion proof is too short");
  return r;
}

export function verifyInclusion(leaf, index, size, proof, root) {
  try {
    return equalBytes(rootFromInclusion(leaf, index, size, proof), root);
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------
// Signed notes, verifier keys and cosignatures (merkle/note.py, merkle/cosignature.py).

export function isValidKeyName(name) {
  return isStr(name) && name.length > 0 && !name.includes("+") && !CONTROL.test(name) && !PY_SPACE.test(name);
}

function checkName(name) {
  if (!isValidKeyName(name)) throw new Error(`invalid key name ${repr(String(name).slice(0, 80))}: empty, or a space, + or control`);
}

function checkNoteText(text) {
  if (!isStr(text) || !text.endsWith("\n")) throw new Error("a note text must be a str ending in a newline");
  if (CONTROL.test(text)) throw new Error("a note text must be valid UTF-8 without control characters");
}

function computeKeyId(name, type, key) {
  checkName(name);
  return u32(sha256(concat(utf8.encode(name), Uint8Array.of(0x0a, type), key)));
}

/** A signed-note verifier key `name+hexid+base64(type||key)` of type 0x01 (log) or 0x04 (clock). */
export function parseVerifierKey(vkey) {
  if (!isStr(vkey)) throw new Error("a key string must be a str");
  const plus1 = vkey.indexOf("+");
  const name = plus1 < 0 ? vkey : vkey.slice(0, plus1);
  const rest = plus1 < 0 ? "" : vkey.slice(plus1 + 1);
  const plus2 = rest.indexOf("+");
  const hexId = plus2 < 0 ? rest : rest.slice(0, plus2);
  const encoded = plus2 < 0 ? "" : rest.slice(plus2 + 1);
  checkName(name);
  if (plus1 < 0 || plus2 < 0 || !HEX_KEY_ID.test(hexId)) throw new Error(`key ${repr(name)} is not name+<8 lowercase hex digits>+base64`);
  const material = b64decodeCanonical(encoded);
  if (material.length < 2) throw new Error(`key ${repr(name)} has no key material`);
  const keyId = parseInt(hexId, 16);
  const type = material[0];
  const publicKey = material.subarray(1);
  if (computeKeyId(name, type, publicKey) !== keyId) throw new Error(`key ${repr(name)}: key ID ${hexId} does not match the key`);
  if (type !== SIG_ED25519 && type !== SIG_COSIGNATURE_V1) throw new Error(`key ${repr(name)} is type ${type}, not ${SIG_ED25519}`);
  if (publicKey.length !== 32) throw new Error(`key ${repr(name)}: Ed25519 public key is not 32 bytes`);
  return { name, keyId, type, publicKey, text: vkey, clock: type === SIG_COSIGNATURE_V1 };
}

function ed25519Verify(publicKey, message, signature) {
  if (signature.length !== 64) return false;
  try {
    // RFC 8032 / FIPS 186-5 decoding, as OpenSSL behind Python's `cryptography` (not ZIP-215).
    return ed25519.verify(signature, message, publicKey, { zip215: false });
  } catch {
    return false;
  }
}

function cosignatureTime(signature) {
  if (signature.length !== 72) throw new Error(`an Ed25519 cosignature is 72 bytes, not ${signature.length}`);
  const t = u64(signature.subarray(0, 8));
  if (t > MAX_TIMESTAMP) throw new Error(`cosignature timestamp ${t} exceeds 2^63 - 1`);
  return t;
}

function verifySignature(key, message, signature) {
  if (!key.clock) return ed25519Verify(key.publicKey, message, signature);
  try {
    const t = cosignatureTime(signature);
    const text = new TextDecoder().decode(message);
    parseCheckpoint(text);
    const signed = utf8.encode(`cosignature/v1\ntime ${t}\n${text}`);
    return ed25519Verify(key.publicKey, signed, signature.subarray(8));
  } catch {
    return false;
  }
}

function parseSignatureLine(line) {
  const body = line.startsWith(DASH) ? line.slice(DASH.length) : line;
  const space = body.indexOf(" ");
  const name = space < 0 ? body : body.slice(0, space);
  const encoded = space < 0 ? "" : body.slice(space + 1);
  if (!line.startsWith(DASH) || space < 0 || !isValidKeyName(name)) throw new Error(`malformed signature line ${repr(line.slice(0, 80))}`);
  const raw = b64decodeCanonical(encoded);
  if (raw.length < 5) throw new Error(`signature by ${repr(name)} is shorter than a key ID and one byte`);
  return { name, keyId: u32(raw), signature: raw.subarray(4) };
}

export function parseNote(note) {
  checkNoteText(note);
  const split = note.lastIndexOf("\n\n");
  if (split < 0) throw new Error("malformed note: no blank line before the signatures");
  const text = note.slice(0, split + 1);
  const block = note.slice(split + 2);
  if (!block) throw new Error("malformed note: no signature lines");
  const lines = block.slice(0, -1).split("\n");
  if (lines.length > MAX_SIGNATURES) throw new Error(`malformed note: more than ${MAX_SIGNATURES} signatures`);
  const signatures = [];
  for (const line of lines) {
    const sig = parseSignatureLine(line);
    if (signatures.some((s) => s.name === sig.name && s.keyId === sig.keyId)) {
      throw new Error(`malformed note: two signatures by ${sig.name}+${sig.keyId.toString(16).padStart(8, "0")}`);
    }
    signatures.push(sig);
  }
  return { text, signatures };
}

function sameKey(a, b) {
  return a.clock === b.clock && a.name === b.name && a.keyId === b.keyId && equalBytes(a.publicKey, b.publicKey);
}

function verifyNote(note, keys) {
  const message = utf8.encode(note.text);
  const verified = [];
  const invalid = [];
  for (const sig of note.signatures) {
    const candidates = keys.filter((k) => k.name === sig.name && k.keyId === sig.keyId);
    if (candidates.length === 0) continue;
    if (candidates.some((k) => !sameKey(k, candidates[0]))) {
      throw new Error(`ambiguous verifiers for key ${sig.name}+${sig.keyId.toString(16).padStart(8, "0")}`);
    }
    (verifySignature(candidates[0], message, sig.signature) ? verified : invalid).push(sig);
  }
  return { verified, invalid };
}

// ---------------------------------------------------------------------------------------------
// Checkpoints (merkle/checkpoint.py).

export function parseCheckpoint(text, origin = null) {
  checkNoteText(text);
  const lines = text.slice(0, -1).split("\n");
  if (lines.length < 3) throw new Error("a checkpoint has at least three lines: origin, size, root hash");
  const [found, size, root, ...extensions] = lines;
  if (!found) throw new Error("checkpoint origin is empty");
  if (origin !== null && found !== origin) throw new Error(`checkpoint origin ${repr(found.slice(0, 80))} is not the expected ${repr(origin)}`);
  if (!DECIMAL.test(size) || BigInt(size) > MAX_TREE_SIZE) throw new Error(`checkpoint size ${repr(size.slice(0, 30))} is not a decimal without leading zeros`);
  if (extensions.some((line) => !line)) throw new Error("checkpoint extension lines must not be empty");
  const rootBytes = b64decodeCanonical(root);
  if (rootBytes.length !== 32) throw new Error(`checkpoint root hash is ${rootBytes.length} bytes, not 32`);
  return { origin: found, size: BigInt(size), root: rootBytes, extensions };
}

function openCheckpoint(note, origin, logKeys, clockKeys) {
  const parsed = parseNote(note);
  const checkpoint = parseCheckpoint(parsed.text, origin);
  const opened = verifyNote(parsed, [...logKeys, ...clockKeys]);
  const isLog = (s) => logKeys.some((k) => k.name === s.name && k.keyId === s.keyId);
  const logSig = opened.verified.find(isLog);
  let time = null;
  for (const sig of opened.verified) {
    for (const clock of clockKeys) {
      if (clock.name === sig.name && clock.keyId === sig.keyId) {
        const t = cosignatureTime(sig.signature);
        if (time === null || t < time) time = t;
      }
    }
  }
  return { checkpoint, logKeyName: logSig ? logSig.name : null, time, invalid: opened.invalid };
}

// ---------------------------------------------------------------------------------------------
// The receipt.

/** The receipt's fields, strictly typed (merkle.receipt._parse_structure); throws naming the field. */
export function parseStructure(receipt) {
  if (!isObj(receipt)) throw new Error("a receipt is a JSON object");
  if (receipt.format !== RECEIPT_FORMAT) throw new Error(`format must be '${RECEIPT_FORMAT}'`);
  const digest = parseDigest(receipt.digest);
  const entryHex = receipt.entry;
  if (!isStr(entryHex) || !HEX.test(entryHex)) throw new Error("entry must be lowercase hex");
  const log = receipt.log;
  if (!isObj(log)) throw new Error("log must be an object");
  const { origin, index, tree_size: size, inclusion } = log;
  if (!isStr(origin) || !origin) throw new Error("log.origin must be a non-empty string");
  for (const [name, value] of [["log.index", index], ["log.tree_size", size]]) {
    if (!isInt(value) || big(value) < 0n) throw new Error(`${name} must be a non-negative integer`);
  }
  if (!Array.isArray(inclusion) || !inclusion.every((h) => isStr(h) && HASH_HEX.test(h))) {
    throw new Error("log.inclusion must be a list of 64-hex-digit hashes");
  }
  if (inclusion.length > 64) throw new Error("log.inclusion is longer than any tree allows");
  const checkpoint = receipt.checkpoint;
  if (!isStr(checkpoint)) throw new Error("checkpoint must be the signed note as text");
  const anchors = has(receipt, "anchors") ? receipt.anchors : [];
  if (!Array.isArray(anchors) || !anchors.every((a) => isObj(a) && isStr(a.type))) {
    throw new Error("anchors must be a list of objects with a type");
  }
  return {
    digest,
    entry: fromHex(entryHex),
    log: { origin, index: big(index), treeSize: big(size), inclusion: inclusion.map(fromHex) },
    checkpoint,
    anchors,
  };
}

/** BLAKE3 or SHA-256 of a File or Blob, read in chunks; `progress(done, total)` after each. */
export async function hashBlob(blob, algorithm, progress = () => {}, cancelled = () => false) {
  const hasher = algorithm === "sha256" ? sha256.create() : blake3.create();
  const chunk = 4 << 20;
  progress(0, blob.size);
  for (let at = 0; at < blob.size; at += chunk) {
    const bytes = new Uint8Array(await blob.slice(at, at + chunk).arrayBuffer());
    if (cancelled()) return null;
    hasher.update(bytes);
    progress(Math.min(at + chunk, blob.size), blob.size);
  }
  return `${algorithm}:${hex(hasher.digest())}`;
}

/** Verifier keys, one per line (blank lines and lines starting with # skipped); throws naming the line. */
export function parseKeys(text) {
  const keys = [];
  text.split(/\r?\n/).forEach((raw, k) => {
    const line = raw.trim();
    if (!line || line.startsWith("#")) return;
    try {
      keys.push(parseVerifierKey(line));
    } catch (e) {
      throw new Error(`line ${k + 1}: ${e.message}`);
    }
  });
  return keys;
}

const check = (name, ok, detail, extra = {}) => ({ name, ok, detail, checked: true, ...extra });

/**
 * Verify a receipt (a parsed JSON value) against trusted `keys` (from parseVerifierKey).
 * `documentDigest` is the digest of the given document ("blake3:…"), or null when none is given.
 * Returns {valid, checks: [{name, ok, detail, checked}], origin, index, treeSize, time, logKey,
 * anchors: [{record, check, info}]}; throws only for nothing (a malformed receipt fails "format").
 */
export function verifyReceipt(receipt, { keys, documentDigest = null }) {
  const logKeys = keys.filter((k) => !k.clock);
  const clockKeys = keys.filter((k) => k.clock);
  const checks = [];
  const result = (extra = {}) => ({
    valid: checks.length > 0 && checks.every((c) => c.ok),
    checks,
    origin: null,
    index: null,
    treeSize: null,
    time: null,
    logKey: null,
    anchors: [],
    ...extra,
  });
  let r;
  try {
    r = parseStructure(receipt);
  } catch (e) {
    checks.push(check("format", false, `not a ${RECEIPT_FORMAT} receipt: ${e.message}`));
    return result();
  }
  checks.push(check("format", true, RECEIPT_FORMAT));
  const want = r.digest.text;

  if (documentDigest !== null) {
    const same = documentDigest === want;
    checks.push(check("document", same, `the document's digest ${documentDigest} ${same ? "matches" : "differs from"} ${want}`));
  }

  try {
    const { digest, salt } = parseEntry(r.entry);
    const ok = digest === want;
    checks.push(check("entry", ok, `the log entry ${ok ? "commits" : "does not commit"} to ${want}${salt.length && ok ? " with a salt" : ""}`));
  } catch (e) {
    checks.push(check("entry", false, `the log entry is malformed: ${e.message}`));
  }

  let opened = null;
  try {
    opened = openCheckpoint(r.checkpoint, r.log.origin, logKeys, clockKeys);
  } catch (e) {
    checks.push(check("checkpoint", false, `the checkpoint is not a valid signed checkpoint of ${r.log.origin}: ${e.message}`));
  }
  const anchors = [];
  if (opened !== null) {
    const cp = opened.checkpoint;
    const sizeOk = cp.size === r.log.treeSize;
    checks.push(check("checkpoint", sizeOk, sizeOk ? `tree of ${cp.size} entries of log ${cp.origin}` : `its size is ${cp.size}, the receipt says ${r.log.treeSize}`));
    const bad = opened.invalid.filter((s) => logKeys.some((k) => k.name === s.name && k.keyId === s.keyId));
    if (bad.length) checks.push(check("log signature", false, `a signature by trusted key ${bad.map((s) => s.name).join(", ")} does not verify`));
    else if (opened.logKeyName !== null) checks.push(check("log signature", true, `signed by trusted key ${opened.logKeyName}`));
    else checks.push(check("log signature", false, "no signature by a trusted log key"));
    const holds = verifyInclusion(leafHash(r.entry), r.log.index, r.log.treeSize, r.log.inclusion, cp.root);
    checks.push(check("inclusion", holds, `entry ${r.log.index} ${holds ? "is" : "is not"} in the signed tree`));
    if (clockKeys.length) {
      // A cosignature of a trusted key that fails is tampering, even when another one vouches.
      const t = opened.time;
      const badClock = opened.invalid.filter((s) => clockKeys.some((k) => k.name === s.name && k.keyId === s.keyId));
      const detail = badClock.length
        ? `a cosignature by trusted key ${badClock.map((s) => s.name).join(", ")} does not verify`
        : t !== null ? `the service vouched for this tree at ${formatTime(t)}` : "no valid timestamped cosignature by a trusted clock key";
      checks.push(check("signed time", t !== null && !badClock.length, detail));
    }
    const split = r.checkpoint.indexOf("\n\n");
    const body = split >= 0 ? r.checkpoint.slice(0, split + 1) : r.checkpoint;
    r.anchors.forEach((record, k) => {
      const c = checkAnchor(k, record, cp, body, logKeys);
      checks.push(c);
      anchors.push({ record, check: c, info: c.info ?? null });
    });
  }
  return result({
    origin: r.log.origin,
    index: r.log.index,
    treeSize: r.log.treeSize,
    time: opened ? opened.time : null,
    logKey: opened ? opened.logKeyName : null,
    digest: want,
    anchors,
  });
}

function anchorCommits(record, cp) {
  if (has(record, "tree_size") && !pyEqualsInt(record.tree_size, cp.size)) {
    return `names tree size ${pyRepr(record.tree_size)}, the checkpoint has ${cp.size}`;
  }
  if (has(record, "root")) {
    const root = record.root;
    if (!isStr(root) || root.toLowerCase().replace(/^0x/, "") !== hex(cp.root)) return "names another root hash than the checkpoint's";
  }
  return null;
}

function pyRepr(v) {
  if (v instanceof JsonFloat) return Number.isInteger(v.value) ? `${v.value}.0` : String(v.value);
  if (typeof v === "boolean") return v ? "True" : "False";
  if (v === null) return "None";
  if (isStr(v)) return repr(v);
  return String(v);
}

function checkAnchor(k, record, cp, body, logKeys) {
  const kind = record.type;
  const name = `anchor ${k + 1} (${kind})`;
  const why = anchorCommits(record, cp);
  if (why !== null) return check(name, false, `does not commit to this checkpoint: ${why}`);
  try {
    if (kind === "local") return localAnchor(name, record, cp, logKeys);
    if (kind === "rfc3161") return rfc3161Anchor(name, record, body);
  } catch (e) {
    return check(name, false, `malformed anchor record: ${e.message}`);
  }
  return check(name, true, "commits to this checkpoint; not checked against its source offline", { checked: false });
}

// ---------------------------------------------------------------------------------------------
// The local anchor (merkle/anchors/local.py): a block signed by the log key.

function checkBlock(block) {
  const extra = Object.keys(block).filter((key) => !LOCAL_FIELDS.includes(key) && key !== "type").sort();
  if (extra.length) throw new Error(`unknown block fields [${extra.map(repr).join(", ")}]`);
  for (const name of ["height", "time", "tree_size"]) {
    const v = block[name];
    if (!isInt(v) || big(v) < 0n || big(v) >= 1n << 63n) throw new Error(`block ${name} must be a non-negative integer`);
  }
  for (const name of ["prev", "root"]) {
    if (!isStr(block[name]) || !HASH_HEX.test(block[name])) throw new Error(`block ${name} must be 64 lowercase hex digits`);
  }
  if (!isStr(block.origin) || !block.origin) throw new Error("block origin must be a non-empty string");
  const sig = b64decodeCanonical(block.sig);
  if (sig.length !== 64) throw new Error("block sig must be a base64 Ed25519 signature");
  return sig;
}

/** orjson.dumps(..., OPT_SORT_KEYS) of the six signed fields: compact, integers in decimal. */
function blockSigningBytes(block) {
  const fields = LOCAL_FIELDS.slice(0, -1).sort();
  const json = "{" + fields.map((f) => `${JSON.stringify(f)}:${isStr(block[f]) ? JSON.stringify(block[f]) : big(block[f]).toString()}`).join(",") + "}";
  return utf8.encode(LOCAL_PREFIX + json);
}

function localAnchor(name, record, cp, logKeys) {
  const block = Object.create(null);
  for (const key of Object.keys(record)) if (key !== "type") block[key] = record[key];
  const sig = checkBlock(block);
  const message = blockSigningBytes(block);
  const signer = logKeys.find((key) => key.name === block.origin && ed25519Verify(key.publicKey, message, sig));
  if (!signer) return check(name, false, "the block is not signed by a trusted log key");
  if (block.origin !== cp.origin || big(block.tree_size) !== cp.size || block.root !== hex(cp.root)) {
    return check(name, false, "the block commits to another checkpoint");
  }
  const when = formatTime(block.time);
  return check(name, true, `block ${block.height} of the local chain, signed by ${signer.name} at ${when}`, {
    info: { height: String(block.height), time: when, signer: signer.name },
  });
}

// ---------------------------------------------------------------------------------------------
// The rfc3161 anchor: the token is parsed (DER) to show the TSA's time and name, and its message
// imprint must be SHA-256 of this checkpoint's body. The CMS signature and the TSA's certificate
// chain are NOT checked here: `notar verify --tsa-ca CA.pem` checks them (merkle/anchors/rfc3161.py).

const OID_SIGNED_DATA = "1.2.840.113549.1.7.2";
const OID_TST_INFO = "1.2.840.113549.1.9.16.1.4";
const OID_SHA256 = "2.16.840.1.101.3.4.2.1";
const NAME_ATTRS = {
  "2.5.4.3": "CN", "2.5.4.5": "serialNumber", "2.5.4.6": "C", "2.5.4.7": "L", "2.5.4.8": "ST",
  "2.5.4.9": "STREET", "2.5.4.10": "O", "2.5.4.11": "OU", "0.9.2342.19200300.100.1.25": "DC",
  "0.9.2342.19200300.100.1.1": "UID", "1.2.840.113549.1.9.1": "1.2.840.113549.1.9.1",
};

function der(bytes, at = 0, depth = 0) {
  if (depth > 40) throw new Error("DER nested too deep");
  if (at + 2 > bytes.length) throw new Error("DER truncated");
  const id = bytes[at];
  if ((id & 0x1f) === 0x1f) throw new Error("DER high tag numbers are not used here");
  let len = bytes[at + 1];
  let head = 2;
  if (len & 0x80) {
    const count = len & 0x7f;
    if (count === 0 || count > 4) throw new Error("DER length form not allowed");
    len = 0;
    for (let k = 0; k < count; k++) len = len * 256 + bytes[at + 2 + k];
    head += count;
  }
  const start = at + head;
  const end = start + len;
  if (end > bytes.length) throw new Error("DER truncated");
  const node = { cls: id >> 6, constructed: Boolean(id & 0x20), tag: id & 0x1f, start, end, raw: bytes.subarray(at, end), value: bytes.subarray(start, end) };
  if (node.constructed) {
    node.children = [];
    for (let p = start; p < end; ) {
      const child = der(bytes, p, depth + 1);
      node.children.push(child);
      p = child.end;
    }
  }
  return node;
}

function expect(node, cls, tag, what) {
  if (!node || node.cls !== cls || node.tag !== tag) throw new Error(`malformed time-stamp token: ${what}`);
  return node;
}

function oid(node) {
  expect(node, 0, 6, "expected an object identifier");
  const v = node.value;
  const parts = [];
  let acc = 0n;
  for (const b of v) {
    acc = (acc << 7n) | BigInt(b & 0x7f);
    if (!(b & 0x80)) {
      parts.push(acc);
      acc = 0n;
    }
  }
  const first = parts.shift();
  const head = first < 40n ? [0n, first] : first < 80n ? [1n, first - 40n] : [2n, first - 80n];
  return [...head, ...parts].join(".");
}

function derInteger(node) {
  expect(node, 0, 2, "expected an integer");
  let v = 0n;
  for (const b of node.value) v = (v << 8n) | BigInt(b);
  if (node.value.length && node.value[0] & 0x80) v -= 1n << BigInt(8 * node.value.length);
  return v;
}

function derString(node) {
  const decoders = { 12: "utf-8", 19: "latin1", 22: "latin1", 20: "latin1", 26: "latin1" };
  if (node.tag === 30) {
    let s = "";
    for (let k = 0; k + 1 < node.value.length; k += 2) s += String.fromCharCode((node.value[k] << 8) | node.value[k + 1]);
    return s;
  }
  if (decoders[node.tag]) return new TextDecoder(decoders[node.tag]).decode(node.value);
  return "#" + hex(node.raw);
}

/** An X.501 Name as RFC 4514 text (last RDN first), as Python's `rfc4514_string`. */
function nameText(node) {
  const rdns = node.children.map((set) =>
    set.children
      .map((atv) => {
        const type = oid(atv.children[0]);
        const value = derString(atv.children[1]).replace(/([,+"\\<>;])/g, "\\$1").replace(/^([ #])/, "\\$1").replace(/ $/, "\\ ");
        return `${NAME_ATTRS[type] ?? type}=${value}`;
      })
      .join("+"),
  );
  return rdns.reverse().join(",");
}

function generalizedTime(node) {
  expect(node, 0, 24, "genTime is not a GeneralizedTime");
  const text = new TextDecoder("latin1").decode(node.value);
  const m = /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\.\d+)?Z$/.exec(text);
  if (!m) throw new Error("malformed time-stamp token: genTime is not UTC");
  return `${m[1]}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:${m[6]}Z`;
}

/** What a time-stamp token says: {time, tsa, serial, policy, hashAlgorithm, imprint}. */
export function parseTimestampToken(bytes) {
  const ci = expect(der(bytes), 0, 16, "not a ContentInfo");
  if (ci.end !== bytes.length) throw new Error("malformed time-stamp token: trailing bytes");
  if (oid(ci.children[0]) !== OID_SIGNED_DATA) throw new Error("the token is not CMS SignedData");
  const sd = expect(expect(ci.children[1], 2, 0, "no content")?.children[0], 0, 16, "no SignedData");
  const encap = expect(sd.children[2], 0, 16, "no encapsulated content");
  if (oid(encap.children[0]) !== OID_TST_INFO) throw new Error("the token does not hold a TSTInfo");
  const octets = expect(expect(encap.children[1], 2, 0, "no TSTInfo")?.children[0], 0, 4, "TSTInfo is not an octet string");
  const tst = expect(der(octets.value), 0, 16, "TSTInfo is not a sequence");
  const [, policy, mi, serial, genTime] = tst.children;
  const algorithm = oid(expect(mi?.children[0], 0, 16, "no hash algorithm").children[0]);
  const hashed = expect(mi.children[1], 0, 4, "no hashed message").value;
  let certs = null;
  let signerInfos = null;
  for (const child of sd.children.slice(3)) {
    if (child.cls === 2 && child.tag === 0) certs = child.children;
    if (child.cls === 0 && child.tag === 17) signerInfos = child.children;
  }
  let tsa = null;
  const si = signerInfos && signerInfos[0];
  const sid = si && si.children[1];
  for (const cert of certs ?? []) {
    const tbs = cert.children?.[0];
    if (!tbs || !tbs.children) continue;
    const off = tbs.children[0].cls === 2 ? 1 : 0;
    const [certSerial, , issuer, , subject] = tbs.children.slice(off);
    const matches =
      !sid ||
      (sid.cls === 0 && sid.tag === 16
        ? equalBytes(sid.children[0].raw, issuer.raw) && derInteger(sid.children[1]) === derInteger(certSerial)
        : true);
    if (matches) {
      tsa = nameText(subject);
      break;
    }
  }
  if (tsa === null) {
    // The TSTInfo's optional tsa [0] GeneralName, when the token carries no certificate.
    const named = tst.children.find((c) => c.cls === 2 && c.tag === 0);
    const dn = named?.children?.[0];
    if (dn && dn.cls === 2 && dn.tag === 4) tsa = nameText(dn.children[0]);
  }
  return {
    time: generalizedTime(genTime),
    tsa: tsa ?? "an unnamed TSA",
    serial: derInteger(serial).toString(),
    policy: oid(policy),
    hashAlgorithm: algorithm,
    imprint: hashed,
  };
}

function rfc3161Anchor(name, record, body) {
  const token = b64decodeCanonical(record.token);
  let info;
  try {
    info = parseTimestampToken(token);
  } catch (e) {
    const msg = e.message.startsWith("malformed") || e.message.startsWith("the token") ? e.message : `malformed time-stamp token: ${e.message}`;
    return check(name, false, msg);
  }
  if (info.hashAlgorithm !== OID_SHA256 || !equalBytes(info.imprint, sha256(utf8.encode(body)))) {
    return check(name, false, "the token's message imprint is not SHA-256 of this checkpoint");
  }
  return check(
    name,
    true,
    `time-stamped at ${info.time} by ${info.tsa} (serial ${info.serial}); the TSA's signature and certificate are not checked in the browser`,
    { checked: "partly", info },
  );
}

export const _internal = { der, blockSigningBytes, b64encode, CODES };
