// The log's primitives for the web verifier (inlined as "notar-log"): digests, RFC 9162 hashing and
// inclusion proofs (merkle/digests.py, merkle/proofs.py), signed notes, verifier keys and
// cosignatures (merkle/note.py, merkle/cosignature.py), checkpoints (merkle/checkpoint.py), each a
// port of merkle/ as strict as it is. No DOM, no network.

import { ed25519, sha256 } from "notar-noble";
import { b64decodeCanonical, big, concat, equalBytes, fromHex, isStr, repr, u32, u64, utf8 } from "notar-json";

const SIG_ED25519 = 0x01;
const SIG_COSIGNATURE_V1 = 0x04;
const MAX_SIGNATURES = 100;
export const MAX_TREE_SIZE = (1n << 63n) - 1n;
const MAX_TIMESTAMP = (1n << 63n) - 1n;
const DASH = "\u2014 ";
const DIGEST = /^(blake3|sha256):([0-9a-f]{64})$/;
const DECIMAL = /^(?:0|[1-9][0-9]{0,18})$/;
const HEX_KEY_ID = /^[0-9a-f]{8}$/;
const CONTROL = /[\x00-\x09\x0b-\x1f]/;
// Python's str.isspace(), which merkle/note.py uses for key names.
const PY_SPACE = /[\t\n\v\f\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]/;

// ---------------------------------------------------------------------------------------------
// Digests and entries (merkle/digests.py), RFC 9162 hashing and inclusion (merkle/proofs.py).

export function parseDigest(text) {
  if (!isStr(text)) throw new Error("a digest must be a string like blake3:<64 lowercase hex>");
  const m = DIGEST.exec(text);
  if (!m) throw new Error(`not a digest: ${repr(text.slice(0, 80))}; expected blake3:<64 lowercase hex> or sha256:<64 lowercase hex>`);
  return { algorithm: m[1], value: fromHex(m[2]), text };
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

export function computeKeyId(name, type, key) {
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

export function ed25519Verify(publicKey, message, signature) {
  if (signature.length !== 64) return false;
  try {
    // RFC 8032 / FIPS 186-5 decoding, as OpenSSL behind Python's `cryptography` (not ZIP-215).
    return ed25519.verify(signature, message, publicKey, { zip215: false });
  } catch {
    return false;
  }
}

export function cosignatureTime(signature) {
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

export function verifyNote(note, keys) {
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

/** A signed checkpoint of `origin` checked against trusted keys (merkle.checkpoint.open_checkpoint):
 * only a log key named after the origin signs it; the earliest trusted clock time. Throws when the
 * note or its body is malformed or of another origin. */
export function openCheckpoint(note, origin, logKeys, clockKeys) {
  const parsed = parseNote(note);
  const checkpoint = parseCheckpoint(parsed.text, origin);
  const opened = verifyNote(parsed, [...logKeys, ...clockKeys]);
  const named = (s) => logKeys.some((k) => k.name === checkpoint.origin && k.name === s.name && k.keyId === s.keyId);
  const logSig = opened.verified.find(named);
  let time = null;
  let cosignedBy = null;
  for (const sig of opened.verified) {
    for (const clock of clockKeys) {
      if (clock.name === sig.name && clock.keyId === sig.keyId) {
        const t = cosignatureTime(sig.signature);
        if (time === null || t < time || (t === time && sig.name < cosignedBy)) {
          time = t;
          cosignedBy = sig.name;
        }
      }
    }
  }
  return { checkpoint, text: parsed.text, logKeyName: logSig ? logSig.name : null, time, cosignedBy, verified: opened.verified, invalid: opened.invalid };
}
