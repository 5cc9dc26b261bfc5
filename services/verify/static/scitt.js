// SCITT transparent statements in the browser (docs/scitt.md): a port of merkle/transparent.py with
// the parts of merkle/cbor.py, merkle/cose.py and merkle/scitt.py it needs, check for check, with
// the names `notar verify` gives: "format", "issuer signature" (never checked here: the page asks
// for no issuer key; `notar verify --issuer-key` checks it) and one "receipt N" per notar COSE
// receipt, each ok or failed with its reason. CBOR is read strictly (definite lengths, no
// duplicate map keys, nothing after the item). No DOM, no network.

import { sha256 } from "notar-noble";
import { concat, equalBytes, hex, repr, utf8 } from "notar-json";
import { ed25519Verify, leafHash, rootFromInclusion } from "notar-log";

const TAG_SIGN1 = 18;
const ENTRY_SCITT = 0x03;
const MAX_DEPTH = 16;
const ALGORITHMS = new Map([[-7, "ES256"], [-35, "ES384"], [-8, "EdDSA"]]);
const HASHES = new Map([[-16, 32], [-43, 48], [-44, 64]]);
const UNDERSTOOD = new Set([1, 2, 3, 4, 15, 33, 34, 258, 259, 260]);
const HDR = { alg: 1, crit: 2, kid: 4, claims: 15, x5chain: 33, x5t: 34, receipts: 394, vds: 395, vdp: 396 };
const TREE_SIZE = "notar.tree_size";
const MAX_CLAIM = 8192;
const OK = "ok";
const FAILED = "failed";
const NOT_CHECKED = "not checked";
const check = (name, status, detail) => ({ name, status, ok: status === OK, detail });

/** A CBOR tag: its number and its content. */
export class Tag {
  constructor(number, value) {
    this.number = number;
    this.value = value;
  }
}

// ---------------------------------------------------------------------------------------------
// CBOR (RFC 8949), as merkle/cbor.py reads and writes it.

/** The one data item that is all of `data`: numbers (BigInt past 2^53), Uint8Array, strings,
 * arrays, Maps (integer or text keys), Tags, null, booleans. Throws naming the offset. */
export function decodeCbor(data) {
  let at = 0;
  const take = (n) => {
    if (n > data.length - at) throw new Error(`CBOR truncated at byte ${at}`);
    const chunk = data.subarray(at, at + n);
    at += n;
    return chunk;
  };
  const head = () => {
    const start = at;
    const first = take(1)[0];
    const major = first >> 5;
    const info = first & 0x1f;
    if (info < 24) return [major, info, BigInt(info)];
    if (info <= 27) {
      let n = 0n;
      for (const b of take(1 << (info - 24))) n = (n << 8n) | BigInt(b);
      return [major, info, n];
    }
    throw new Error(`${info === 31 ? "indefinite-length" : "reserved"} CBOR item at byte ${start}`);
  };
  const small = (n) => (n <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(n) : n);
  const count = (n, unit) => {
    if (n * BigInt(unit) > BigInt(data.length - at)) throw new Error(`CBOR length ${n} at byte ${at} is past the end`);
    return Number(n);
  };
  const item = (depth) => {
    if (depth > MAX_DEPTH) throw new Error(`CBOR nested deeper than ${MAX_DEPTH} at byte ${at}`);
    const start = at;
    const [major, info, n] = head();
    switch (major) {
      case 0:
        return small(n);
      case 1:
        return small(-1n - n);
      case 2:
        return take(count(n, 1)).slice();
      case 3:
        try {
          return new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(take(count(n, 1)));
        } catch {
          throw new Error(`CBOR text at byte ${start} is not UTF-8`);
        }
      case 4:
        return Array.from({ length: count(n, 1) }, () => item(depth + 1));
      case 5: {
        const map = new Map();
        for (let k = count(n, 2); k > 0; k--) {
          let key = item(depth + 1);
          // A byte-string key is kept as text that no label equals, so that a doubled one is seen.
          if (key instanceof Uint8Array) key = `\u0000bytes:${hex(key)}`;
          else if (typeof key !== "number" && typeof key !== "bigint" && typeof key !== "string") throw new Error(`a CBOR map key at byte ${start} is not an integer, text or bytes`);
          if (map.has(key)) throw new Error(`a CBOR map at byte ${start} has the key ${repr(String(key))} twice`);
          map.set(key, item(depth + 1));
        }
        return map;
      }
      case 6:
        return new Tag(small(n), item(depth + 1));
      default:
        if (info === 20 || info === 21) return info === 21;
        if (info === 22) return null;
        if (info === 24 && n < 32n) throw new Error(`CBOR simple value ${n} in two bytes at byte ${start}`);
        return { simple: small(n) }; // floats and other simple values: never a valid member here
    }
  };
  const value = item(0);
  if (at !== data.length) throw new Error(`${data.length - at} bytes after the CBOR data item`);
  return value;
}

function cborHead(major, n) {
  if (n < 24) return Uint8Array.of((major << 5) | n);
  if (n < 0x100) return Uint8Array.of((major << 5) | 24, n);
  if (n < 0x10000) return Uint8Array.of((major << 5) | 25, n >> 8, n & 0xff);
  return Uint8Array.of((major << 5) | 26, n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff);
}

const bstr = (bytes) => concat(cborHead(2, bytes.length), bytes);

/** The log entry of a statement: 0x03 || SHA-256(18([protected, {}, payload, signature])), in
 * deterministic CBOR, the protected header's bytes as received (merkle.scitt.statement_entry). */
export function statementEntry(protectedRaw, payload, signature) {
  const envelope = concat(Uint8Array.of(0xd2, 0x84), bstr(protectedRaw), Uint8Array.of(0xa0), bstr(payload), bstr(signature));
  return concat(Uint8Array.of(ENTRY_SCITT), sha256(envelope));
}

/** RFC 9679 thumbprint of an Ed25519 log key: SHA-256 of the CBOR {1: 1, -1: 6, -2: x}. */
export function logKid(publicKey) {
  return sha256(concat(Uint8Array.of(0xa3, 0x01, 0x01, 0x20, 0x06), Uint8Array.of(0x21), bstr(publicKey)));
}

function sign1(data, what) {
  const value = decodeCbor(data);
  if (!(value instanceof Tag) || value.number !== TAG_SIGN1) throw new Error(`${what} is not a tagged COSE_Sign1 (CBOR tag 18)`);
  const parts = value.value;
  if (!Array.isArray(parts) || parts.length !== 4) throw new Error(`${what} is not [protected, unprotected, payload, signature]`);
  const [protectedRaw, unprotected, payload, signature] = parts;
  if (!(protectedRaw instanceof Uint8Array) || !(unprotected instanceof Map)) throw new Error(`${what}: the protected header is not a byte string or the unprotected one not a map`);
  if (!(signature instanceof Uint8Array) || (payload !== null && !(payload instanceof Uint8Array))) throw new Error(`${what}: the payload or the signature is not a byte string`);
  const header = protectedRaw.length ? decodeCbor(protectedRaw) : new Map();
  if (!(header instanceof Map)) throw new Error(`${what}: the protected header is not a map`);
  return { protectedRaw, header, unprotected, payload, signature };
}

// ---------------------------------------------------------------------------------------------
// Signed statements (merkle/scitt.py parse_statement, its main rules).

/** The statement's parts; throws naming what is wrong (as POST /entries refuses it). */
export function parseStatement(data) {
  if (data[0] !== 0xd2) throw new Error("Not a COSE_Sign1: a signed statement is a tagged COSE_Sign1: CBOR tag 18 (0xd2)");
  let s;
  try {
    s = sign1(data, "the statement");
  } catch (e) {
    throw new Error(`Malformed request: ${e.message}`);
  }
  const { header, unprotected, payload } = s;
  if (payload === null) throw new Error("Payload Missing: the payload is detached (nil)");
  const alg = header.get(HDR.alg);
  if (!ALGORITHMS.has(alg)) throw new Error(`Bad Signature Algorithm: the protected header's alg (1) is ${repr(String(alg))}; accepted: ES256 (-7), ES384 (-35), EdDSA (-8)`);
  if (unprotected.has(HDR.alg)) throw new Error("Rejected: alg (1) must be only in the protected header");
  const claims = header.get(HDR.claims);
  if (!(claims instanceof Map)) throw new Error("Missing Claims: the protected header has no CWT claims (15) with iss (1) and sub (2)");
  const [issuer, subject] = [[1, "iss"], [2, "sub"]].map(([label, name]) => {
    const v = claims.get(label);
    if (typeof v !== "string" || !v) throw new Error(`Missing Claims: the CWT claims (15) have no ${name} (${label}) text`);
    if (v.length > MAX_CLAIM) throw new Error(`Malformed request: the ${name} claim is longer than ${MAX_CLAIM} characters`);
    return v;
  });
  if (header.has(HDR.crit)) {
    const crit = header.get(HDR.crit);
    if (!Array.isArray(crit) || !crit.length) throw new Error("Malformed request: crit (2) must be a non-empty array of labels");
    for (const label of crit) {
      if (!header.has(label)) throw new Error(`Malformed request: crit (2) names ${repr(String(label))}, which the protected header lacks`);
      if (!UNDERSTOOD.has(label)) throw new Error(`Rejected: crit (2) marks header ${repr(String(label))} critical, which notar does not process`);
    }
  }
  const kid = header.get(HDR.kid);
  if (kid !== undefined && (!(kid instanceof Uint8Array) || !kid.length)) throw new Error("Malformed request: the protected kid (4) must be a non-empty byte string");
  const x5chain = header.has(HDR.x5chain) ? header.get(HDR.x5chain) : unprotected.get(HDR.x5chain);
  if (x5chain !== undefined && x5chain !== null) {
    const certs = x5chain instanceof Uint8Array ? [x5chain] : x5chain;
    if (!Array.isArray(certs) || !certs.length || !certs.every((c) => c instanceof Uint8Array && c.length)) throw new Error("Malformed request: x5chain (33) must be a certificate or an array of certificates (DER)");
  }
  const x5t = header.get(HDR.x5t);
  if (x5t !== undefined && x5t !== null) {
    if (!Array.isArray(x5t) || x5t.length !== 2 || typeof x5t[0] !== "number" || !(x5t[1] instanceof Uint8Array)) throw new Error("Malformed request: x5t (34) must be [hash algorithm, hash] (RFC 9360 COSE_CertHash)");
    if (!HASHES.has(x5t[0])) throw new Error(`Rejected: x5t's hash algorithm ${x5t[0]} is not SHA-256 (-16), SHA-384 (-43) or SHA-512 (-44)`);
  }
  if (unprotected.has(HDR.x5t)) throw new Error("Rejected: x5t (34) must be in the protected header");
  if (x5chain !== undefined && x5chain !== null && !header.has(HDR.x5chain) && (x5t === undefined || x5t === null)) throw new Error("Rejected: an x5chain (33) in the unprotected header needs an x5t (34) in the protected header");
  if ((kid === undefined || kid === null) && (x5chain === undefined || x5chain === null)) throw new Error("Rejected: the statement names no key: kid (4), or x5chain (33) with x5t (34)");
  hashEnvelope(header, unprotected, payload);
  const receipts = unprotected.has(HDR.receipts) ? unprotected.get(HDR.receipts) : [];
  return { ...s, issuer, subject, alg: ALGORITHMS.get(alg), receipts, entry: statementEntry(s.protectedRaw, payload, s.signature) };
}

/** RFC 9995 (merkle.scitt._check_hash_envelope): 258, 259, 260 protected only; with 258, no
 * content type (3) and a payload of exactly that hash's size. */
function hashEnvelope(header, unprotected, payload) {
  for (const label of [258, 259, 260]) {
    if (unprotected.has(label)) throw new Error(`Rejected: hash envelope header ${label} must be in the protected header`);
  }
  if (!header.has(258)) return;
  if (header.has(3) || unprotected.has(3)) throw new Error("Rejected: a hash envelope (258) has no content type (3): use 259");
  const size = HASHES.get(header.get(258));
  if (size === undefined) throw new Error(`Rejected: payload hash algorithm (258) ${repr(String(header.get(258)))} is not -16, -43 or -44`);
  if (payload.length !== size) throw new Error(`Malformed request: a hash envelope's payload is ${size} bytes, not ${payload.length}`);
}

// ---------------------------------------------------------------------------------------------
// notar COSE receipts (merkle/cose.py read_receipt and verify_receipt).

/** The receipt's claims once checked under trusted Ed25519 `logKeys` for `entry`; throws naming why not. */
export function verifyCoseReceipt(data, logKeys, entry) {
  const { protectedRaw, header, unprotected, payload, signature } = sign1(data, "the COSE receipt");
  if (payload !== null) throw new Error("a COSE receipt's payload is detached (nil): the root is recomputed");
  if (header.get(HDR.alg) !== -8) throw new Error("COSE receipt algorithm must be EdDSA (-8)");
  if (header.get(HDR.vds) !== 1) throw new Error("COSE receipt must use the RFC9162_SHA256 verifiable data structure (395: 1)");
  const kid = header.get(HDR.kid);
  if (!(kid instanceof Uint8Array) || kid.length !== 32) throw new Error("the COSE receipt's key ID (kid) must be a 32-byte RFC 9679 thumbprint");
  const signedSize = header.get(TREE_SIZE);
  if (typeof signedSize !== "number" && typeof signedSize !== "bigint") throw new Error(`the COSE receipt's protected header has no '${TREE_SIZE}': not a notar receipt`);
  const claims = header.get(HDR.claims);
  const issuer = claims instanceof Map ? claims.get(1) : undefined;
  if (typeof issuer !== "string") throw new Error("the COSE receipt's CWT claims (15) name no issuer (1)");
  const iat = claims.get(6);
  const vdp = unprotected.get(HDR.vdp);
  const proofs = vdp instanceof Map ? vdp.get(-1) : undefined;
  if (!Array.isArray(proofs) || proofs.length !== 1 || !(proofs[0] instanceof Uint8Array)) throw new Error("a COSE receipt needs exactly one inclusion proof (396: {-1: [bstr]})");
  const proof = decodeCbor(proofs[0]);
  const isInt = (n) => typeof n === "number" || typeof n === "bigint";
  if (!Array.isArray(proof) || proof.length !== 3 || !isInt(proof[0]) || !isInt(proof[1]) || !Array.isArray(proof[2])) throw new Error("malformed RFC9162 inclusion proof: not [tree_size, index, path]");
  const [size, index, path] = proof;
  if (BigInt(size) !== BigInt(signedSize)) throw new Error(`the inclusion proof is for tree size ${size}, the signed tree size is ${signedSize}`);
  if (!path.every((h) => h instanceof Uint8Array && h.length === 32)) throw new Error("an inclusion proof hash is not 32 bytes");
  const root = rootFromInclusion(leafHash(entry), index, size, path);
  const key = logKeys.find((k) => equalBytes(logKid(k.publicKey), kid));
  if (!key) throw new Error(`the COSE receipt is signed by key ${hex(kid)}, which is not trusted`);
  if (issuer !== key.name) throw new Error(`the COSE receipt's issuer ${repr(issuer.slice(0, 100))} is not its key's log ${repr(key.name)}`);
  const message = concat(Uint8Array.of(0x84), utf8Text("Signature1"), bstr(protectedRaw), Uint8Array.of(0x40), bstr(root));
  if (!ed25519Verify(key.publicKey, message, signature)) throw new Error("the COSE receipt's signature does not verify");
  return { issuer, index, treeSize: size, kid, iat: isInt(iat) ? iat : null, logKey: key.name };
}

function utf8Text(text) {
  const bytes = utf8.encode(text);
  return concat(cborHead(3, bytes.length), bytes);
}

// ---------------------------------------------------------------------------------------------
// The verdict (merkle/transparent.py verify_transparent).

/**
 * Check a transparent statement (bytes) and the COSE `receipts` given beside it (bytes each)
 * under trusted `keys` (from parseVerifierKey; clock keys are not used). Returns {valid, checks,
 * unchecked, issuer, subject, receipts: [{index, treeSize, issuer, logKey, iat}]}; never throws.
 */
export function verifyTransparent(data, { keys, receipts = [] }) {
  const checks = [];
  const result = (extra = {}) => ({
    valid: checks.length > 0 && !checks.some((c) => c.status === FAILED),
    checks,
    unchecked: checks.filter((c) => c.status === NOT_CHECKED).map((c) => c.name),
    issuer: null,
    subject: null,
    receipts: [],
    ...extra,
  });
  let s;
  try {
    s = parseStatement(data);
  } catch (e) {
    checks.push(check("format", FAILED, e.message));
    return result();
  }
  checks.push(check("format", OK, `a signed statement of ${repr(s.issuer.slice(0, 200))} about ${repr(s.subject.slice(0, 200))}`));
  checks.push(check("issuer signature", NOT_CHECKED, "no issuer key given (notar verify --issuer-key checks it)"));
  // As merkle.transparent.embedded_receipts: a 394 that is not an array, or an item that is not a
  // byte string, is no receipt.
  const embedded = Array.isArray(s.receipts) ? s.receipts.filter((r) => r instanceof Uint8Array) : [];
  const every = [...receipts, ...embedded];
  if (!every.length) checks.push(check("receipt", FAILED, "no receipt: neither given nor in the statement (394)"));
  const logKeys = keys.filter((k) => !k.clock);
  const good = [];
  every.forEach((r, k) => {
    try {
      const c = verifyCoseReceipt(r, logKeys, s.entry);
      good.push(c);
      const when = c.iat === null ? "" : `, at ${c.iat} (clock-cosigned POSIX time)`;
      checks.push(check(`receipt ${k + 1}`, OK, `entry ${c.index} of the log ${c.issuer}, in a tree of ${c.treeSize} entries signed by key ${hex(c.kid).slice(0, 16)}…${when}`));
    } catch (e) {
      checks.push(check(`receipt ${k + 1}`, FAILED, e.message));
    }
  });
  return result({ issuer: s.issuer, subject: s.subject, receipts: good });
}

/** Whether a file's first bytes are a COSE_Sign1 (tag 18) rather than a JSON receipt. */
export function isCose(bytes) {
  return bytes.length > 0 && bytes[0] === 0xd2;
}
