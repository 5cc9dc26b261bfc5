// notar receipt verification in the browser (SPEC §5, notar.receipt.v2): a port of merkle/receipt.py
// and merkle/verdict.py, check for check, each `ok`, `failed` or `not checked` with its reason.
//
// Every check has the name and the status that `notar verify` gives for the same receipt, keys and
// document (tests/services/verify/test_web_verifier_corpus.py compares them on a corpus). Parsing is
// as strict as merkle/: the receipt's members (unknown, missing or doubled ones, a v1 receipt, more
// than 16 anchors: malformed), signed notes (C2SP signed-note), checkpoints (C2SP tlog-checkpoint),
// verifier keys, cosignatures (C2SP tlog-cosignature/v1), RFC 9162 inclusion proofs, aggregates and
// local anchor blocks. The v2 entry is recomputed with SHA-256. Anchors of a type it does not know,
// and EVM anchors (no chain here), are not checked; RFC 3161 tokens are checked in full against the
// TSA CA certificates given (timestamp.js, with WebCrypto), and without one they are not checked:
// what they claim is shown as a claim. Nothing here touches the DOM or the network.

import { blake3, sha256 } from "notar-noble";
import { JsonFloat, b64decodeCanonical, b64encode, big, concat, equalBytes, formatTime, fromHex, has, hex, isInt, isObj, isStr, pySlice, repr, utf8 } from "notar-json";
import { MAX_TREE_SIZE, ed25519Verify, leafHash, openCheckpoint, parseDigest, parseVerifierKey, rootFromInclusion, verifyInclusion } from "notar-log";
import { OID, Unsupported, readTimestampToken, verifyTimestampToken } from "notar-timestamp";
import { checkWitnesses, trustOfKeys } from "notar-trust";

export { formatTime, parseJson } from "notar-json";
export { parseVerifierKey } from "notar-log";
export { parsePolicy, periodsOf, trustOfDocument, trustOfKeys, trustOfPolicy } from "notar-trust";
export { parsePemCertificates } from "notar-x509";

export const RECEIPT_FORMAT = "notar.receipt.v2";
const V1_FORMAT = "notar.receipt.v1";
const SALT_SIZE = 16;
const ENTRY_SIZE = 33;
const ENTRY_NOTAR = 0x02;
const SUBJECT_MAX = 64;
const MAX_INCLUSION = 64;
const MAX_ANCHORS = 16;
const ANCHOR_TIME_SLACK_S = 300;
const LOCAL_PREFIX = "notar.local-anchor.v1\n";
const AGGREGATE_SUFFIX = "/aggregate";
const LOCAL_FIELDS = ["height", "prev", "time", "origin", "tree_size", "root", "sig"];
const HEX = /^(?:[0-9a-f]{2})*$/;
const HASH_HEX = /^[0-9a-f]{64}$/;
const CODES = { blake3: 0x1e, sha256: 0x12 };
const ENTRY_DOMAIN = utf8.encode("notar.entry.v2\x00");

// ---------------------------------------------------------------------------------------------
// The receipt (merkle/receipt.py): read strictly, as Receipt.from_obj reads it.

const MEMBERS = ["format", "digest", "salt", "subject", "entry", "log", "checkpoint", "anchors"];
const LOG_MEMBERS = ["origin", "index", "tree_size", "inclusion"];

function jsonType(v) {
  if (v === null) return "null";
  if (typeof v === "boolean") return "a boolean";
  if (isInt(v) || v instanceof JsonFloat) return "a number";
  if (isStr(v)) return "a string";
  if (Array.isArray(v)) return "a list";
  return "an object";
}

function members(obj, names, prefix) {
  const unknown = Object.keys(obj).filter((k) => !names.includes(k));
  if (unknown.length) throw new Error(`unknown member ${repr(prefix + pySlice(unknown[0], 60))}`);
  const missing = names.filter((k) => !has(obj, k));
  if (missing.length) throw new Error(`the member '${prefix}${missing[0]}' is missing`);
}

function hexMember(value, what, size) {
  if (!isStr(value) || value.length !== 2 * size || !HEX.test(value)) throw new Error(`${what} must be ${2 * size} lowercase hex digits (${size} bytes)`);
  return fromHex(value);
}

/** The UTF-8 of a subject (a tenant's name), 1 to 64 bytes (merkle.digests.subject_bytes). */
function subjectBytes(subject) {
  const data = utf8.encode(subject);
  if (data.length < 1 || data.length > SUBJECT_MAX) throw new Error(`subject: a subject is 1 to ${SUBJECT_MAX} bytes of UTF-8, not ${data.length}`);
  return data;
}

/** The v2 log entry of `digest` notarized with `salt` by `subject` (merkle.digests.make_entry):
 * 0x02 || SHA-256("notar.entry.v2" || 0x00 || salt || multihash || u8(len(subject)) || subject). */
export function makeEntry(digest, salt, subject) {
  const tail = subjectBytes(subject);
  const multihash = concat(Uint8Array.of(CODES[digest.algorithm], 32), digest.value);
  return concat(Uint8Array.of(ENTRY_NOTAR), sha256(concat(ENTRY_DOMAIN, salt, multihash, Uint8Array.of(tail.length), tail)));
}

/** A receipt's members, strictly (Receipt.from_obj); throws naming what is wrong. */
export function parseReceipt(receipt) {
  if (!isObj(receipt)) throw new Error(`a receipt is a JSON object, not ${jsonType(receipt)}`);
  if (!has(receipt, "format")) throw new Error("the member 'format' is missing");
  const fmt = receipt.format;
  if (fmt === V1_FORMAT) throw new Error(`${V1_FORMAT} is a pre-release format that is not accepted: this verifier reads ${RECEIPT_FORMAT}`);
  if (fmt !== RECEIPT_FORMAT) throw new Error(`format ${isStr(fmt) ? repr(pySlice(fmt, 60)) : jsonType(fmt)} is not '${RECEIPT_FORMAT}'`);
  members(receipt, MEMBERS, "");
  const log = receipt.log;
  if (!isObj(log)) throw new Error(`log must be an object, not ${jsonType(log)}`);
  members(log, LOG_MEMBERS, "log.");
  let digest;
  try {
    digest = parseDigest(receipt.digest);
  } catch (e) {
    throw new Error(`digest: ${e.message}`);
  }
  const { subject, checkpoint, anchors } = receipt;
  const { origin, index, tree_size: size, inclusion } = log;
  if (!isStr(subject)) throw new Error(`subject must be a string, not ${jsonType(subject)}`);
  if (!isStr(origin)) throw new Error(`log.origin must be a string, not ${jsonType(origin)}`);
  if (!isStr(checkpoint)) throw new Error(`checkpoint must be the signed note as a string, not ${jsonType(checkpoint)}`);
  for (const [name, value] of [["index", index], ["tree_size", size]]) {
    if (!isInt(value)) throw new Error(`log.${name} must be an integer, not ${jsonType(value)}`);
  }
  if (!Array.isArray(inclusion)) throw new Error(`log.inclusion must be a list of hashes, not ${jsonType(inclusion)}`);
  if (inclusion.length > MAX_INCLUSION) throw new Error(`log.inclusion has more than ${MAX_INCLUSION} hashes`);
  if (!Array.isArray(anchors)) throw new Error(`anchors must be a list, not ${jsonType(anchors)}`);
  if (anchors.length > MAX_ANCHORS) throw new Error(`a receipt carries at most ${MAX_ANCHORS} anchors, not ${anchors.length}`);
  anchors.forEach((a, k) => {
    if (!isObj(a)) throw new Error(`anchors[${k}]: an anchor record is a JSON object`);
    if (!isStr(a.type) || !a.type) throw new Error(`anchors[${k}]: an anchor record needs a non-empty string member 'type'`);
  });
  const salt = hexMember(receipt.salt, "salt", SALT_SIZE);
  const entry = hexMember(receipt.entry, "entry", ENTRY_SIZE);
  const proof = inclusion.map((h, k) => hexMember(h, `log.inclusion[${k}]`, 32));
  subjectBytes(subject);
  if (!origin) throw new Error("log.origin must be a non-empty string");
  for (const [name, value] of [["log.index", index], ["log.tree_size", size]]) {
    if (big(value) < 0n || big(value) > MAX_TREE_SIZE) throw new Error(`${name} must be an integer from 0 to 2^63 - 1`);
  }
  return { digest, salt, subject, entry, origin, index: big(index), treeSize: big(size), inclusion: proof, checkpoint, anchors };
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

/** Every verifier key of a /v1/keys document (SPEC §6): each log's log and clock keys, the witnesses. */
export function keysOfDocument(doc) {
  const logs = isObj(doc) ? doc.logs : null;
  if (!Array.isArray(logs) || !logs.length || !logs.every(isObj)) throw new Error('expected {"logs": [{"origin", "log", "clock", …}], "witnesses": […]}');
  const texts = [];
  for (const log of logs) {
    for (const name of ["log", "clock"]) {
      if (!isStr(log[name])) throw new Error(`a log's '${name}' key is not a verifier key string`);
      texts.push(log[name]);
    }
  }
  const witnesses = has(doc, "witnesses") ? doc.witnesses : [];
  if (!Array.isArray(witnesses) || !witnesses.every(isStr)) throw new Error("'witnesses' is not a list of verifier key strings");
  return [...texts, ...witnesses].map(parseVerifierKey);
}

export const OK = "ok";
export const FAILED = "failed";
export const NOT_CHECKED = "not checked";
const check = (name, status, detail, extra = {}) => ({ name, status, ok: status === OK, detail, ...extra });

/**
 * Verify a receipt (a parsed JSON value) against trusted `keys` (from parseVerifierKey, trusted
 * at every tree size; or a trust of trust.js: key histories and a witness policy), as
 * merkle.verdict.verify_receipt does, check for check: each `ok`, `failed` or `not checked`.
 * `documentDigest` is the digest of the given document ("blake3:…"), or null when none is given;
 * `tsaCas` the trusted TSA CA certificates (parsePemCertificates), or null: RFC 3161 anchors are
 * then not checked (as `notar verify` without `--tsa-ca`).
 * Returns {valid, checks: [{name, status, ok, detail}], unchecked: [name], origin, index,
 * treeSize, subject, time, logKey, digest, anchors: [{record, check, info}]}; never throws (a
 * malformed receipt fails "format" and is the only check).
 */
export async function verifyReceipt(receipt, { keys, documentDigest = null, tsaCas = null }) {
  const trust = Array.isArray(keys) ? trustOfKeys(keys) : keys; // keys, or a trust (trust.js)
  const checks = [];
  const result = (extra = {}) => ({
    valid: checks.length > 0 && checks[0].name === "format" && checks[0].ok && !checks.some((c) => c.status === FAILED),
    checks,
    unchecked: checks.filter((c) => c.status === NOT_CHECKED).map((c) => c.name),
    origin: null,
    index: null,
    treeSize: null,
    subject: null,
    time: null,
    logKey: null,
    digest: null,
    anchors: [],
    ...extra,
  });
  let r;
  try {
    r = parseReceipt(receipt);
  } catch (e) {
    checks.push(check("format", FAILED, `not a ${RECEIPT_FORMAT} receipt: ${e.message}`));
    return result();
  }
  checks.push(check("format", OK, RECEIPT_FORMAT));
  const logKeys = trust.logKeys(r.origin, r.treeSize);
  const clockKeys = trust.clockKeys(r.origin, r.treeSize);
  const want = r.digest.text;
  if (documentDigest === null) {
    checks.push(check("document", NOT_CHECKED, "no document given: the receipt's digest was not compared"));
  } else {
    const same = documentDigest === want;
    checks.push(check("document", same ? OK : FAILED, `the document's digest ${documentDigest} ${same ? "matches the receipt" : `differs from the receipt's ${want}`}`));
  }
  checks.push(entryCheck(r));

  let opened = null;
  try {
    opened = openCheckpoint(r.checkpoint, r.origin, logKeys, clockKeys);
  } catch (e) {
    checks.push(check("checkpoint", FAILED, `not a signed checkpoint of log ${r.origin}: ${e.message}`));
  }
  if (opened === null) {
    checks.push(check("log signature", FAILED, "there is no readable checkpoint to check"));
    checks.push(check("inclusion", FAILED, "there is no readable checkpoint to prove inclusion in"));
  } else {
    const cp = opened.checkpoint;
    const sizeOk = cp.size === r.treeSize;
    checks.push(check("checkpoint", sizeOk ? OK : FAILED, sizeOk ? `a tree of ${cp.size} ${String(cp.size) === "1" ? "entry" : "entries"} of log ${cp.origin}` : `its size is ${cp.size}, the receipt says ${r.treeSize}`));
    checks.push(logSignature(opened, logKeys, trust.outsidePeriod(r.checkpoint, r.origin, r.treeSize)));
    const holds = verifyInclusion(leafHash(r.entry), r.index, r.treeSize, r.inclusion, cp.root);
    checks.push(check("inclusion", holds ? OK : FAILED, holds ? `entry ${r.index} is in the signed tree of ${r.treeSize}` : `the proof does not lead from entry ${r.index} to the signed root`));
  }
  let time;
  const outside = trust.outsidePeriod(r.checkpoint, r.origin, r.treeSize, true);
  if (!clockKeys.length && outside === null) time = check("signed time", NOT_CHECKED, "no clock key given: the time is not checked");
  else if (opened === null) time = check("signed time", FAILED, "there is no readable checkpoint to check");
  else time = signedTime(opened, clockKeys, outside);
  checks.push(time);
  if (trust.policy) {
    const w = checkWitnesses(r.checkpoint, trust.policy);
    checks.push(check(w.name, w.status, w.detail));
  }
  const signedAt = opened !== null && time.ok ? opened.time : null;
  const anchors = [];
  for (const [k, record] of r.anchors.entries()) {
    const c = await checkAnchor(k, record, opened, signedAt, trust.allLogKeys(), tsaCas && tsaCas.length ? tsaCas : null);
    checks.push(c);
    anchors.push({ record, check: c, info: c.info ?? null });
  }
  return result({
    origin: r.origin,
    index: r.index,
    treeSize: r.treeSize,
    subject: r.subject,
    time: signedAt,
    logKey: opened ? opened.logKeyName : null,
    digest: want,
    anchors,
  });
}

function entryCheck(r) {
  if (r.entry[0] !== ENTRY_NOTAR) return check("entry", FAILED, `the log entry is of type 0x${r.entry[0].toString(16).padStart(2, "0")}, not a notar commitment (0x02)`);
  if (!equalBytes(makeEntry(r.digest, r.salt, r.subject), r.entry)) return check("entry", FAILED, "the log entry is not the commitment to this digest, salt and subject");
  return check("entry", OK, `the log entry commits to ${r.digest.text}, notarized by ${repr(r.subject)}`);
}

function logSignature(opened, logKeys, outside) {
  const origin = opened.checkpoint.origin;
  const trusted = (s) => logKeys.some((k) => k.name === s.name && k.keyId === s.keyId);
  const bad = opened.invalid.filter(trusted);
  if (bad.length) return check("log signature", FAILED, `a signature by trusted key ${bad.map((s) => s.name).join(", ")} does not verify`);
  if (opened.logKeyName !== null) return check("log signature", OK, `signed by trusted log key ${opened.logKeyName}`);
  if (outside !== null) return check("log signature", FAILED, outside);
  const others = opened.verified.filter(trusted);
  if (others.length) {
    return check("log signature", FAILED, `signed only by trusted key ${others.map((s) => s.name).join(", ")}, whose name is not the origin ${repr(origin)}: a log key signs only the log it is named after`);
  }
  return check("log signature", FAILED, `no signature by a trusted log key named ${repr(origin)}`);
}

function signedTime(opened, clockKeys, outside) {
  // A trusted cosignature that fails is tampering, even when another trusted one vouches for a time.
  const bad = opened.invalid.filter((s) => clockKeys.some((k) => k.name === s.name && k.keyId === s.keyId));
  if (bad.length) return check("signed time", FAILED, `a cosignature by trusted key ${bad.map((s) => s.name).join(", ")} does not verify`);
  if (opened.time === null) return check("signed time", FAILED, outside ?? "no valid timestamped cosignature by a trusted clock key");
  return check("signed time", OK, `the service vouched for this tree at ${formatTime(opened.time)} (cosigned by ${opened.cosignedBy})`);
}
// ---------------------------------------------------------------------------------------------
// Anchors (merkle/verdict.py, merkle/aggregate.py): what a record must commit to, then its kind.

const AGGREGATE_ORIGIN = "notar.aggregate.v1";
const KINDS = ["local", "evm", "rfc3161"];

function checkpointText(origin, size, root) {
  return `${origin}\n${size}\n${b64encode(root)}\n`;
}

/** An `aggregate` member, strictly (merkle.aggregate.parse_aggregate). */
function parseAggregate(value) {
  if (!isObj(value)) throw new Error("aggregate must be an object {size, index, path}");
  const extra = Object.keys(value).filter((k) => !["size", "index", "path"].includes(k)).map((k) => pySlice(k, 40)).sort();
  if (extra.length) throw new Error(`aggregate has an unknown member ${repr(extra[0])}`);
  for (const [name, low] of [["size", 1n], ["index", 0n]]) {
    const v = value[name];
    if (!isInt(v) || big(v) < low || big(v) > MAX_TREE_SIZE) throw new Error(`aggregate.${name} must be an integer of at least ${low}`);
  }
  const size = big(value.size);
  const index = big(value.index);
  if (index >= size) throw new Error(`aggregate.index ${index} is outside an aggregate of ${size}`);
  const path = value.path;
  if (!Array.isArray(path) || path.length > 64) throw new Error("aggregate.path must be a list of at most 64 hashes");
  path.forEach((h, k) => {
    if (!isStr(h) || !HASH_HEX.test(h)) throw new Error(`aggregate.path[${k}] must be 64 lowercase hex digits`);
  });
  return { size, index, path: path.map(fromHex) };
}

/** What a record commits to: the checkpoint, or the aggregate its path leads to (AnchorTarget). */
function anchorTarget(record, cp, body) {
  if (!has(record, "aggregate")) return { cp, body, aggregate: null, size: cp.size, root: cp.root, stamped: body };
  const aggregate = parseAggregate(record.aggregate);
  let root;
  try {
    root = rootFromInclusion(leafHash(utf8.encode(checkpointText(cp.origin, cp.size, cp.root))), aggregate.index, aggregate.size, aggregate.path);
  } catch (e) {
    throw new Error(`aggregate.path does not fit leaf ${aggregate.index} of ${aggregate.size}: ${e.message}`);
  }
  return { cp, body, aggregate, size: aggregate.size, root, stamped: checkpointText(AGGREGATE_ORIGIN, aggregate.size, root) };
}

function mismatch(target, record) {
  const what = target.aggregate !== null ? "the aggregate" : "the checkpoint";
  if (has(record, "tree_size") && (!isInt(record.tree_size) || big(record.tree_size) !== target.size)) {
    return `it names tree size ${pySlice(pyRepr(record.tree_size), 30)}, ${what} has ${target.size}`;
  }
  if (has(record, "root")) {
    const root = record.root;
    if (!isStr(root) || root.toLowerCase().replace(/^0x/, "") !== hex(target.root)) return `it names another root hash than ${what}'s`;
  }
  return null;
}

function pyRepr(v) {
  if (v instanceof JsonFloat) return Number.isInteger(v.value) ? `${v.value}.0` : String(v.value);
  if (typeof v === "boolean") return v ? "True" : "False";
  if (v === null) return "None";
  if (isStr(v)) return v;
  if (isObj(v) || Array.isArray(v)) return JSON.stringify(v);
  return String(v);
}

async function checkAnchor(k, record, opened, signedAt, logKeys, tsaCas) {
  const kind = record.type;
  const name = `anchor ${k + 1} (${pySlice(kind, 40)})`;
  if (!KINDS.includes(kind)) return check(name, NOT_CHECKED, `anchor type ${repr(pySlice(kind, 40))} is unknown to this verifier`);
  if (opened === null) return check(name, NOT_CHECKED, "there is no readable checkpoint to check it against");
  let target;
  try {
    target = anchorTarget(record, opened.checkpoint, opened.text);
  } catch (e) {
    return check(name, FAILED, `malformed aggregate: ${e.message}`);
  }
  const why = mismatch(target, record);
  if (why !== null) return check(name, FAILED, `does not commit to this checkpoint: ${why}`);
  let verdict;
  try {
    if (kind === "local") verdict = localAnchor(record, target, logKeys);
    else if (kind === "rfc3161") verdict = tsaCas ? await rfc3161Anchor(record, target, tsaCas) : rfc3161Claims(record, target);
    else return check(name, NOT_CHECKED, "an EVM anchor is checked against its chain, not in a browser: notar verify --online checks it");
  } catch (e) {
    return check(name, FAILED, `malformed anchor record: ${e.message}`);
  }
  if (verdict.status === OK && verdict.time !== null && signedAt !== null) {
    const early = signedAt - big(verdict.time);
    if (early > BigInt(ANCHOR_TIME_SLACK_S)) {
      return check(name, FAILED, `${verdict.detail}; but that is ${early} s before the signed time ${formatTime(signedAt)}, more than the ${ANCHOR_TIME_SLACK_S} s allowed: the anchor cannot be of this checkpoint`);
    }
  }
  return check(name, verdict.status, verdict.detail, { info: verdict.info ?? null });
}
// ---------------------------------------------------------------------------------------------
// The local anchor (merkle/anchors/local.py): a block signed by the log key.

function checkBlock(block) {
  const extra = Object.keys(block).filter((key) => !LOCAL_FIELDS.includes(key)).map((key) => pySlice(key, 40)).sort();
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

function localAnchor(record, target, logKeys) {
  const block = Object.create(null);
  for (const key of Object.keys(record)) if (key !== "type" && key !== "aggregate") block[key] = record[key];
  const sig = checkBlock(block);
  const message = blockSigningBytes(block);
  // An aggregate's block names the aggregating log + "/aggregate"; its log key signs it.
  const keyName = block.origin.endsWith(AGGREGATE_SUFFIX) ? block.origin.slice(0, -AGGREGATE_SUFFIX.length) : block.origin;
  const signer = logKeys.find((key) => key.name === keyName && ed25519Verify(key.publicKey, message, sig));
  if (!signer) return { status: FAILED, detail: "the block is not signed by a trusted key named after its origin", time: null };
  if (target.aggregate === null && block.origin !== target.cp.origin) {
    return { status: FAILED, detail: `the block is of log ${repr(block.origin)}, not ${repr(target.cp.origin)}`, time: null };
  }
  if (big(block.tree_size) !== target.size || block.root !== hex(target.root)) return { status: FAILED, detail: "the block commits to another tree", time: null };
  const when = formatTime(block.time);
  const of = target.aggregate !== null ? `, for an aggregate of ${target.size} checkpoints` : "";
  return {
    status: OK,
    detail: `block ${block.height} of the local chain${of}, signed by ${signer.name} at ${when}`,
    time: big(block.time),
    info: { height: String(block.height), time: when, seconds: Number(block.time), signer: signer.name },
  };
}

// ---------------------------------------------------------------------------------------------
// The rfc3161 anchor (merkle/anchors/rfc3161.py; the token itself is checked by timestamp.js).

/** An rfc3161 record checked against the trusted TSA CAs: its time is the token's genTime. */
async function rfc3161Anchor(record, target, tsaCas) {
  const token = b64decodeCanonical(record.token);
  let info;
  try {
    info = await verifyTimestampToken(token, target.stamped, tsaCas);
  } catch (e) {
    if (e instanceof Unsupported) return { status: NOT_CHECKED, detail: `not checked: ${e.message}`, time: null, info: claimsOf(token) };
    return { status: FAILED, detail: e.message, time: null };
  }
  const of = target.aggregate !== null ? ` for an aggregate of ${target.size} checkpoints` : "";
  return {
    status: OK,
    detail: `time-stamped${of} at ${info.time} by ${info.tsa} (serial ${info.serial})`,
    time: BigInt(info.seconds),
    info: { ...info, checked: true },
  };
}

function claimsOf(token) {
  try {
    return { ...readTimestampToken(token), checked: false };
  } catch {
    return null;
  }
}

/** Without a TSA CA nothing a token says is evidence (anyone can write one): not checked, as
 * `notar verify` without --tsa-ca; what it claims is shown as a claim. */
function rfc3161Claims(record, target) {
  const why = "no TSA CA certificate given: the time-stamping authority's signature and certificate are not checked (paste its CA, or notar verify --tsa-ca checks them)";
  let token;
  try {
    token = b64decodeCanonical(record.token);
  } catch {
    return { status: NOT_CHECKED, detail: `${why}; the token is not even base64`, time: null };
  }
  let info;
  try {
    info = readTimestampToken(token);
  } catch (e) {
    return { status: NOT_CHECKED, detail: `${why}; the token does not even read: ${e.message}`, time: null };
  }
  const stamps = info.hashAlgorithm === OID.sha256 && equalBytes(info.imprint, sha256(utf8.encode(target.stamped)));
  const claim = `it claims a time-stamp at ${info.time} by ${info.tsa} (serial ${info.serial})`;
  return {
    status: NOT_CHECKED,
    detail: stamps ? `${why}; ${claim}` : `${why}; ${claim}, but of another checkpoint`,
    time: null,
    info: { ...info, checked: false },
  };
}
