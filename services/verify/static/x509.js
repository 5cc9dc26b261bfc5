// X.509 certificates for the web verifier (inlined as "notar-x509"): parsing, signatures with
// WebCrypto (RSA PKCS#1 v1.5 and PSS, ECDSA P-256/P-384/P-521; Ed25519 with noble), and a chain to
// trusted CAs at a given time. It follows what merkle/anchors/rfc3161.py asks of Python's
// `cryptography` (its X.509 verifier with the Web PKI profile for CAs), rule for rule: a v3
// certificate with a positive serial of at most 20 octets, the same algorithm inside and outside,
// a non-empty issuer, validity dates encoded as RFC 5280 says and covering the time; no unknown
// critical extension and none twice; a CA has a critical basicConstraints with cA (its pathLen
// kept), keyUsage keyCertSign, a well-formed authorityKeyIdentifier when present, an
// extendedKeyUsage that allows time-stamping when present, an RSA (>= 2048 bits) or P-256/384/521 key, and signs with an algorithm of the CA/B
// Forum's list; chains are at most 8 CAs long; a trusted certificate ends the chain. Name
// constraints are not evaluated (a TSA certificate names no host). No DOM, no network.

import { equalBytes, hex } from "notar-json";
import { ed25519Verify } from "notar-log";
import { CONTEXT, UNIVERSAL, bitString, boolean, der, derWhole, expect, integer, integerBytes, nameText, octets, oid, pemCertificates, seq, time } from "notar-der";

export const OID = {
  rsa: "1.2.840.113549.1.1.1",
  pss: "1.2.840.113549.1.1.10",
  ec: "1.2.840.10045.2.1",
  ed25519: "1.3.101.112",
  sha1: "1.3.14.3.2.26",
  sha256: "2.16.840.1.101.3.4.2.1",
  sha384: "2.16.840.1.101.3.4.2.2",
  sha512: "2.16.840.1.101.3.4.2.3",
  timeStamping: "1.3.6.1.5.5.7.3.8",
};
const EXT = {
  aia: "1.3.6.1.5.5.7.1.1", aki: "2.5.29.35", ski: "2.5.29.14", ku: "2.5.29.15",
  san: "2.5.29.17", bc: "2.5.29.19", nc: "2.5.29.30", eku: "2.5.29.37",
};
const KNOWN_EXTENSIONS = new Set(Object.values(EXT));
const ANY_EKU = "2.5.29.37.0";
export const HASHES = { [OID.sha256]: "SHA-256", [OID.sha384]: "SHA-384", [OID.sha512]: "SHA-512" };
const HASH_BYTES = { "SHA-256": 32, "SHA-384": 48, "SHA-512": 64 };
const CURVES = { "1.2.840.10045.3.1.7": ["P-256", 32], "1.3.132.0.34": ["P-384", 48], "1.3.132.0.35": ["P-521", 66] };

// The AlgorithmIdentifiers a CA's key and a certificate's signature may have (CA/B Forum BR
// 7.1.3.1 and 7.1.3.2, as Python's `cryptography` lists them), DER by DER.
const PERMITTED_SPKI = new Set([
  "300d06092a864886f70d0101010500",
  "301306072a8648ce3d020106082a8648ce3d030107",
  "301006072a8648ce3d020106052b81040022",
  "301006072a8648ce3d020106052b81040023",
]);
const PSS_PARAMS = (h, salt) =>
  `304106092a864886f70d01010a3034a00f300d060960864801650304020${h}0500a11c301a06092a864886f70d010108300d060960864801650304020${h}0500a2030201${salt}`;
const CERT_SIGNATURES = new Map([
  ["300d06092a864886f70d01010b0500", { kind: "pkcs1", hash: "SHA-256" }],
  ["300d06092a864886f70d01010c0500", { kind: "pkcs1", hash: "SHA-384" }],
  ["300d06092a864886f70d01010d0500", { kind: "pkcs1", hash: "SHA-512" }],
  [PSS_PARAMS(1, "20"), { kind: "pss", hash: "SHA-256", salts: [32] }],
  [PSS_PARAMS(2, "30"), { kind: "pss", hash: "SHA-384", salts: [48] }],
  [PSS_PARAMS(3, "40"), { kind: "pss", hash: "SHA-512", salts: [64] }],
  ["300a06082a8648ce3d040302", { kind: "ecdsa", hash: "SHA-256" }],
  ["300a06082a8648ce3d040303", { kind: "ecdsa", hash: "SHA-384" }],
  ["300a06082a8648ce3d040304", { kind: "ecdsa", hash: "SHA-512" }],
]);
const MIN_RSA_BITS = 2048;
const MAX_CHAIN_DEPTH = 8;
const SIGNATURE_BUDGET = 128;

/** What this browser cannot check (no WebCrypto, a curve it lacks): "not checked", never "failed". */
export class Unsupported extends Error {}

class ChainError extends Error {}

function subtle() {
  const s = globalThis.crypto && globalThis.crypto.subtle;
  if (!s) throw new Unsupported("this browser offers no WebCrypto here (a page must be served over HTTPS, or opened from a file, to have it)");
  return s;
}

/** SHA-1/256/384/512 of `data` with WebCrypto (`name` as WebCrypto names it). */
export async function digest(name, data) {
  return new Uint8Array(await subtle().digest(name, data));
}

function extensionsOf(node) {
  const out = new Map();
  let duplicate = null;
  for (const ext of seq(expect(node, CONTEXT, 3, "certificate extensions").children[0], "certificate extensions")) {
    const parts = seq(ext, "certificate extension");
    const id = oid(parts[0], "certificate extension");
    let critical = false;
    let k = 1;
    if (parts[1] && parts[1].cls === UNIVERSAL && parts[1].tag === 1) {
      critical = boolean(parts[1], "certificate extension");
      k = 2;
    }
    if (parts.length !== k + 1) throw new Error("malformed certificate extension");
    if (out.has(id)) duplicate = duplicate ?? id;
    out.set(id, { critical, value: octets(parts[k], "certificate extension") });
  }
  return { extensions: out, duplicate };
}

/** A DER certificate's parts; throws "malformed certificate" on anything else. */
export function parseCertificate(bytes) {
  try {
    const root = derWhole(bytes, "certificate");
    const [tbs, sigAlg, sigValue, extra] = seq(root, "certificate");
    if (!sigValue || extra) throw new Error("malformed certificate");
    const t = seq(tbs, "certificate");
    let k = 0;
    let version = 0;
    if (t[0] && t[0].cls === CONTEXT && t[0].tag === 0) {
      version = Number(integer(t[0].children[0], "certificate version"));
      k = 1;
    }
    const serial = integerBytes(t[k], "certificate serial number");
    const [tbsSigAlg, issuer, validity, subject, spki] = t.slice(k + 1, k + 6);
    const [notBefore, notAfter] = seq(validity, "certificate validity").map((n) => time(n, "certificate validity"));
    const [keyAlg, keyBits] = seq(spki, "subject public key info");
    const [keyOid, params] = seq(keyAlg, "subject public key info");
    let exts = { extensions: new Map(), duplicate: null };
    for (const node of t.slice(k + 6)) if (node.cls === CONTEXT && node.tag === 3) exts = extensionsOf(node);
    seq(tbsSigAlg, "certificate signature algorithm");
    seq(sigAlg, "certificate signature algorithm");
    return {
      der: bytes,
      tbs: tbs.raw,
      version,
      serial,
      sigAlg: sigAlg.raw,
      tbsSigAlg: tbsSigAlg.raw,
      signature: bitString(sigValue, "certificate signature").bytes,
      issuer: { raw: issuer.raw, text: nameText(issuer), empty: !issuer.children.length },
      subject: { raw: subject.raw, text: nameText(subject) },
      notBefore,
      notAfter,
      spki: { raw: spki.raw, alg: keyAlg.raw, oid: oid(keyOid), curve: params && params.tag === 6 ? oid(params) : null, key: bitString(keyBits, "public key").bytes },
      ...exts,
    };
  } catch (e) {
    throw new Error(e.message.startsWith("malformed") ? e.message : `malformed certificate: ${e.message}`);
  }
}

/** The certificates of PEM text (a TSA's CA file), parsed; throws naming the one that is not. */
export function parsePemCertificates(text) {
  return pemCertificates(text).map((bytes, k) => {
    try {
      return parseCertificate(bytes);
    } catch (e) {
      throw new Error(`certificate ${k + 1}: ${e.message}`);
    }
  });
}

// ---------------------------------------------------------------------------------------------
// Signatures.

/** ECDSA-Sig-Value (DER) as r || s of `size` bytes each, as WebCrypto takes it; null when it is
 * not a strict DER pair of positive integers that fit. */
function ecdsaRaw(signature, size) {
  try {
    const parts = seq(derWhole(signature, "signature"), "signature");
    if (parts.length !== 2) return null;
    const out = new Uint8Array(2 * size);
    for (const [k, node] of parts.entries()) {
      let v = integerBytes(node, "signature");
      if (v[0] & 0x80) return null;
      while (v.length > 1 && v[0] === 0) v = v.subarray(1);
      if (v.length > size || (v.length === 1 && v[0] === 0)) return null;
      out.set(v, (k + 1) * size - v.length);
    }
    return out;
  } catch {
    return null;
  }
}

function rsaModulus(spki) {
  return integerBytes(seq(der(spki.key), "RSA public key")[0], "RSA public key");
}

/**
 * Whether `signature` over `data` verifies under the public key of `cert` with `scheme`:
 * {kind: "pkcs1" | "pss" | "ecdsa" | "ed25519", hash, salts (for PSS: the salt lengths to try)}.
 * Throws Unsupported for a key or curve WebCrypto does not offer.
 */
export async function verifySignature(cert, scheme, signature, data) {
  const { spki } = cert;
  if (scheme.kind === "ed25519") {
    if (spki.oid !== OID.ed25519 || spki.key.length !== 32) return false;
    return ed25519Verify(spki.key, data, signature);
  }
  if (scheme.kind === "ecdsa") {
    if (spki.oid !== OID.ec) return false;
    const curve = CURVES[spki.curve];
    if (!curve) throw new Unsupported(`the TSA's key is on a curve (${spki.curve}) that browsers do not check`);
    const raw = ecdsaRaw(signature, curve[1]);
    if (raw === null) return false;
    const key = await importKey(spki.raw, { name: "ECDSA", namedCurve: curve[0] });
    return verifies({ name: "ECDSA", hash: scheme.hash }, key, raw, data);
  }
  if (spki.oid !== OID.rsa) return false;
  if (scheme.kind === "pkcs1") {
    const key = await importKey(spki.raw, { name: "RSASSA-PKCS1-v1_5", hash: scheme.hash });
    return verifies("RSASSA-PKCS1-v1_5", key, signature, data);
  }
  const key = await importKey(spki.raw, { name: "RSA-PSS", hash: scheme.hash });
  for (const saltLength of scheme.salts) {
    if (await verifies({ name: "RSA-PSS", saltLength }, key, signature, data)) return true;
  }
  return false;
}

/** WebCrypto's verify, an operation it refuses (a salt longer than the key allows) being false. */
async function verifies(algorithm, key, signature, data) {
  try {
    return await subtle().verify(algorithm, key, signature, data);
  } catch {
    return false;
  }
}

async function importKey(spki, algorithm) {
  try {
    return await subtle().importKey("spki", spki, algorithm, false, ["verify"]);
  } catch (e) {
    if (e instanceof Unsupported) throw e;
    throw new Unsupported(`this browser cannot use the key (${e.message})`);
  }
}

/** The PSS salt lengths to try for a signer's RSASSA-PSS-params (`cryptography`'s PSS.AUTO takes
 * any; WebCrypto needs one): the stated one, the hash's length, and the usual others. */
export function pssSalts(params, hash, modulusBytes) {
  const stated = [];
  try {
    for (const node of params ? seq(params, "RSASSA-PSS parameters") : []) {
      if (node.cls === CONTEXT && node.tag === 2) stated.push(Number(integer(node.children[0], "PSS salt length")));
    }
  } catch {
    // A malformed parameter: only the usual lengths are tried.
  }
  const most = Math.max(0, modulusBytes - HASH_BYTES[hash] - 2);
  return [...new Set([...stated, HASH_BYTES[hash], 20, 0, most].filter((n) => n >= 0 && n <= most))];
}

export function rsaModulusBytes(cert) {
  try {
    const n = rsaModulus(cert.spki);
    return n[0] === 0 ? n.length - 1 : n.length;
  } catch {
    return 0;
  }
}

// ---------------------------------------------------------------------------------------------
// The chain.

function fail(why) {
  throw new ChainError(why);
}

function permitsBasic(c, at) {
  if (c.version !== 2) fail("certificate must be an X509v3 certificate");
  if (!equalBytes(c.sigAlg, c.tbsSigAlg)) fail("mismatch between signatureAlgorithm and SPKI algorithm");
  if (c.serial.length > 21) fail("certificate must have a serial between 1 and 20 octets");
  if (c.serial[0] & 0x80) fail("certificate serial number cannot be negative");
  if (c.issuer.empty) fail("certificate must have a non-empty Issuer");
  for (const t of [c.notBefore, c.notAfter]) {
    if (t.generalized && t.year >= 1950 && t.year < 2050) fail("validity dates between 1950 and 2049 must be UtcTime");
    if (t.fraction) fail("validity dates have no fraction of a second");
  }
  if (at < c.notBefore.seconds || at > c.notAfter.seconds) fail(`cert is not valid at validation time (${c.subject.text}: ${c.notBefore.text} to ${c.notAfter.text})`);
}

function extensionValue(c, id, what) {
  const ext = c.extensions.get(id);
  return ext ? derWhole(ext.value, what) : null;
}

function commonExtensions(c) {
  if (c.duplicate) fail(`invalid extension: ${c.duplicate}: duplicate extension`);
  for (const [id, ext] of c.extensions) {
    if (!KNOWN_EXTENSIONS.has(id) && ext.critical) fail(`certificate contains unaccounted-for critical extensions: ${id}`);
  }
}

function criticality(c, id, want) {
  const ext = c.extensions.get(id);
  if (ext && want !== null && ext.critical !== want) fail(`invalid extension: ${id}: Certificate extension has incorrect criticality`);
  return ext;
}

/** The key purposes of an extendedKeyUsage, or null when there is none. */
function ekus(c) {
  const node = extensionValue(c, EXT.eku, "extended key usage");
  return node ? seq(node, "extended key usage").map((n) => oid(n, "extended key usage")) : null;
}

function basicConstraints(c) {
  const node = extensionValue(c, EXT.bc, "basic constraints");
  if (!node) return null;
  const parts = seq(node, "basic constraints");
  let k = 0;
  let ca = false;
  if (parts[0] && parts[0].tag === 1 && parts[0].cls === UNIVERSAL) {
    ca = boolean(parts[0], "basic constraints");
    k = 1;
  }
  const pathLen = parts[k] ? integer(parts[k], "basic constraints") : null;
  return { ca, pathLen };
}

/** The TSA certificate itself (RFC 3161 §2.3; merkle's policy for it): any extensions but unknown
 * critical ones, and a critical extendedKeyUsage of timeStamping alone. */
function permitsTsa(c, at) {
  permitsBasic(c, at);
  commonExtensions(c);
  const ext = c.extensions.get(EXT.eku);
  if (!ext) fail("invalid extension: 2.5.29.37: Certificate is missing required extension");
  if (!ext.critical) fail("invalid extension: 2.5.29.37: Certificate extension has incorrect criticality");
  const purposes = ekus(c);
  if (purposes.length !== 1 || purposes[0] !== OID.timeStamping) fail("invalid extension: 2.5.29.37: the extended key usage must be timeStamping alone");
}

function permitsCa(c, depth, at) {
  permitsBasic(c, at);
  commonExtensions(c);
  criticality(c, EXT.aia, false);
  if (c.extensions.has(EXT.aia)) seq(extensionValue(c, EXT.aia, "authority information access"), "authority information access").forEach((a) => seq(a, "access description"));
  if (criticality(c, EXT.aki, false)) {
    const parts = seq(extensionValue(c, EXT.aki, "authority key identifier"), "authority key identifier");
    if (!parts.some((p) => p.cls === CONTEXT && p.tag === 0)) fail("authorityKeyIdentifier must contain keyIdentifier");
    if (parts.some((p) => p.cls === CONTEXT && p.tag === 1)) fail("authorityKeyIdentifier must not contain authorityCertIssuer");
    if (parts.some((p) => p.cls === CONTEXT && p.tag === 2)) fail("authorityKeyIdentifier must not contain authorityCertSerialNumber");
  }
  criticality(c, EXT.ski, false);
  if (!c.extensions.has(EXT.ku)) fail("invalid extension: 2.5.29.15: Certificate is missing required extension");
  const usage = bitString(extensionValue(c, EXT.ku, "key usage"), "key usage").bytes;
  if (!(usage[0] & 0x04)) fail("keyUsage.keyCertSign must be asserted in a CA certificate");
  if (!criticality(c, EXT.bc, true)) fail("invalid extension: 2.5.29.19: Certificate is missing required extension");
  const bc = basicConstraints(c);
  if (!bc.ca) fail("basicConstraints.cA must be asserted in a CA certificate");
  if (bc.pathLen !== null && BigInt(depth) > bc.pathLen) fail("path length constraint violated");
  if (c.extensions.has(EXT.nc)) {
    const parts = seq(extensionValue(c, EXT.nc, "name constraints"), "name constraints");
    if (!parts.some((p) => p.children && p.children.length)) fail("nameConstraints must have non-empty permittedSubtrees or excludedSubtrees");
  }
  if (c.extensions.has(EXT.eku)) {
    const purposes = ekus(c);
    if (!purposes.includes(OID.timeStamping) && !purposes.includes(ANY_EKU)) fail(`the CA ${c.subject.text} may not certify time-stamping`);
  }
}

async function validIssuer(issuer, child, depth, at, budget) {
  permitsCa(issuer, depth, at);
  if (!PERMITTED_SPKI.has(hex(issuer.spki.alg))) fail(`Forbidden public key algorithm: ${issuer.spki.oid}`);
  const scheme = CERT_SIGNATURES.get(hex(child.sigAlg));
  if (!scheme) fail("Forbidden signature algorithm");
  if (issuer.spki.oid === OID.rsa && rsaModulus(issuer.spki).length * 8 < MIN_RSA_BITS) fail("RSA key is too weak");
  if (--budget.signatures < 0) throw new ChainError("fatal error: Exceeded maximum signature check limit");
  if (!(await verifySignature(issuer, scheme, child.signature, child.tbs))) fail("signature does not match");
}

function keyIdentifier(c, id) {
  try {
    const node = extensionValue(c, id, "key identifier");
    if (!node) return null;
    if (id === EXT.ski) return octets(node, "key identifier");
    const first = seq(node, "key identifier").find((p) => p.cls === CONTEXT && p.tag === 0);
    return first ? first.value : null;
  } catch {
    return null;
  }
}

/** Candidate issuers of `c`: trusted ones first, each group by how well the key identifiers match. */
function issuersOf(c, trusted, others) {
  const want = keyIdentifier(c, EXT.aki);
  const rank = (cand) => {
    const have = keyIdentifier(cand, EXT.ski);
    if (want && have) return equalBytes(want, have) ? 0 : 2;
    return 1;
  };
  const named = [...trusted, ...others].filter((cand) => equalBytes(cand.subject.raw, c.issuer.raw));
  return named.map((cand, k) => [rank(cand), k, cand]).sort((a, b) => a[0] - b[0] || a[1] - b[1]).map((x) => x[2]);
}

async function build(c, depth, trusted, others, at, budget) {
  if (trusted.some((t) => equalBytes(t.der, c.der))) return [c];
  if (depth > MAX_CHAIN_DEPTH) fail("chain construction exceeds max depth");
  let last = null;
  for (const issuer of issuersOf(c, trusted, others)) {
    try {
      await validIssuer(issuer, c, depth, at, budget);
      return [c, ...(await build(issuer, depth + 1, trusted, others, at, budget))];
    } catch (e) {
      if (!(e instanceof ChainError) || e.message.startsWith("fatal")) throw e;
      last = e;
    }
  }
  const inner = last ? last.message.replace(/^candidates exhausted: /, "") : "all candidates exhausted with no interior errors";
  throw new ChainError(`candidates exhausted: ${inner}`);
}

/**
 * Check that the TSA certificate `tsa` chains, through `others` (the token's other certificates),
 * to one of the `trusted` certificates, every certificate valid at `at` (seconds since the epoch).
 * Returns the chain (the TSA's first); throws Error naming the reason, or Unsupported.
 */
export async function verifyTsaChain(tsa, others, trusted, at) {
  try {
    permitsTsa(tsa, at);
    return await build(tsa, 0, trusted, others, at, { signatures: SIGNATURE_BUDGET });
  } catch (e) {
    if (e instanceof Unsupported) throw e;
    throw new Error(`the TSA certificate is not trusted for time-stamping: ${e.message}`);
  }
}

