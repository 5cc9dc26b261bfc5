// RFC 3161 time-stamp tokens for the web verifier (inlined as "notar-timestamp"), checked as
// merkle/anchors/rfc3161.py checks them: CMS SignedData with one signer over a TSTInfo whose
// message imprint is SHA-256 of the stamped text; signed attributes carrying the TSTInfo's content
// type and digest and an ESS signing-certificate (v1 or v2) naming the signer's certificate; the
// signature (RSA PKCS#1 v1.5 or PSS, ECDSA, Ed25519) under that certificate; and the certificate,
// whose only extended key usage is a critical timeStamping, chaining to a trusted CA at the token's
// genTime (x509.js). `readTimestampToken` only reads what a token claims, for when no CA is given.
// No DOM, no network.

import { sha256 } from "notar-noble";
import { equalBytes, utf8 } from "notar-json";
import { CONTEXT, UNIVERSAL, derWhole, expect, integer, nameText, octets, oid, seq, time, twosComplement } from "notar-der";
import { HASHES, OID, Unsupported, digest, parseCertificate, pssSalts, rsaModulusBytes, verifySignature, verifyTsaChain } from "notar-x509";

export { OID, Unsupported } from "notar-x509";

const OID_SIGNED_DATA = "1.2.840.113549.1.7.2";
const OID_TST_INFO = "1.2.840.113549.1.9.16.1.4";
const ATTR = {
  contentType: "1.2.840.113549.1.9.3",
  messageDigest: "1.2.840.113549.1.9.4",
  signingCertificate: "1.2.840.113549.1.9.16.2.12",
  signingCertificateV2: "1.2.840.113549.1.9.16.2.47",
};

class TokenError extends Error {}

function bad(why) {
  throw new TokenError(why);
}

/** The parts of a DER token (ContentInfo of SignedData over a TSTInfo); throws TokenError. */
function parseToken(bytes) {
  const ci = seq(derWhole(bytes, "time-stamp token"), "time-stamp token: not a ContentInfo");
  if (oid(ci[0], "time-stamp token") !== OID_SIGNED_DATA) bad("the token is not CMS SignedData");
  const sd = seq(expect(ci[1], CONTEXT, 0, "time-stamp token: no content").children[0], "time-stamp token: no SignedData");
  const encap = seq(sd[2], "time-stamp token: no encapsulated content");
  if (oid(encap[0], "time-stamp token") !== OID_TST_INFO) bad("the token does not hold a TSTInfo");
  const tstDer = octets(expect(encap[1], CONTEXT, 0, "time-stamp token: no TSTInfo").children[0], "time-stamp token: TSTInfo is not an octet string");
  const tst = seq(derWhole(tstDer, "TSTInfo"), "time-stamp token: TSTInfo is not a sequence");
  const [, policy, imprint, serial, genTime] = tst;
  const [hashAlg, hashed] = seq(imprint, "time-stamp token: message imprint");
  let certs = [];
  let signers = null;
  for (const child of sd.slice(3)) {
    if (child.cls === CONTEXT && child.tag === 0) certs = child.children.filter((c) => c.cls === UNIVERSAL && c.tag === 16);
    if (child.cls === UNIVERSAL && child.tag === 17) signers = child.children;
  }
  if (signers === null) bad("malformed time-stamp token: no signer infos");
  return {
    tstDer,
    tst,
    policy: oid(policy, "time-stamp token: policy"),
    hashAlgorithm: oid(seq(hashAlg, "time-stamp token: hash algorithm")[0]),
    imprint: octets(hashed, "time-stamp token: hashed message"),
    serial: integer(serial, "time-stamp token: serial number"),
    genTime: time(genTime, "time-stamp token: genTime"),
    certs,
    signers,
  };
}

/** The certificate a SignerInfo's sid names (by issuer and serial, or by subject key identifier). */
function signerCertificate(token, sid) {
  for (const node of token.certs) {
    const cert = parseCertificate(node.raw);
    if (sid.cls === UNIVERSAL && sid.tag === 16) {
      const [issuer, serial] = sid.children;
      if (equalBytes(cert.issuer.raw, issuer.raw) && integer(serial) === twosComplement(cert.serial)) return cert;
    } else if (sid.cls === CONTEXT && sid.tag === 0) {
      const ski = cert.extensions.get("2.5.29.14");
      if (ski && equalBytes(octets(derWhole(ski.value, "key identifier"), "key identifier"), sid.value)) return cert;
    }
  }
  return bad("the token does not include its signer's certificate");
}

const DIGEST_NAMES = { "1.3.14.3.2.26": "sha1", "2.16.840.1.101.3.4.2.4": "sha224", "1.2.840.113549.2.5": "md5" };

async function hashWith(algorithm, data) {
  const name = HASHES[algorithm];
  if (!name) bad(`digest algorithm ${DIGEST_NAMES[algorithm] ?? algorithm} is not accepted`);
  return digest(name, data);
}

/** The signed attributes, first value of each type (the last attribute of a type wins, as in Python). */
function attributes(node) {
  const attrs = new Map();
  for (const a of node.children) {
    const [type, values] = seq(a, "time-stamp token: signed attribute");
    attrs.set(oid(type), expect(values, UNIVERSAL, 17, "time-stamp token: signed attribute").children);
  }
  return attrs;
}

async function checkSignedAttributes(attrs, digestAlgorithm, tstDer, cert) {
  const type = attrs.get(ATTR.contentType);
  if (!type || !type[0] || oid(type[0]) !== OID_TST_INFO) bad("the signed content type is not TSTInfo");
  const md = attrs.get(ATTR.messageDigest);
  if (!md || !md[0] || !equalBytes(octets(md[0], "message digest"), await hashWith(digestAlgorithm, tstDer))) bad("the signed message digest does not match the TSTInfo");
  let id;
  let matches;
  if (attrs.has(ATTR.signingCertificateV2)) {
    id = seq(seq(seq(attrs.get(ATTR.signingCertificateV2)[0], "signing certificate")[0], "signing certificate")[0], "signing certificate");
    let algorithm = OID.sha256;
    if (id[0] && id[0].cls === UNIVERSAL && id[0].tag === 16) algorithm = oid(seq(id.shift(), "signing certificate")[0]);
    matches = equalBytes(octets(id[0], "signing certificate"), await hashWith(algorithm, cert.der));
  } else if (attrs.has(ATTR.signingCertificate)) {
    id = seq(seq(seq(attrs.get(ATTR.signingCertificate)[0], "signing certificate")[0], "signing certificate")[0], "signing certificate");
    matches = equalBytes(octets(id[0], "signing certificate"), await digest("SHA-1", cert.der));
  } else {
    bad("no ESS signing-certificate attribute");
  }
  if (!matches) bad("the ESS signing-certificate names another certificate");
  const issuerSerial = id[1];
  if (issuerSerial) {
    const serial = seq(issuerSerial, "signing certificate")[1];
    if (!serial || integer(serial) !== twosComplement(cert.serial)) bad("the ESS signing-certificate names another serial number");
  }
}

/** How the signer signed, as Python decides it: by the certificate's key type, PSS only when the
 * signature algorithm says RSASSA-PSS, with the SignerInfo's digest algorithm. */
function scheme(cert, digestAlgorithm, signatureAlgorithm) {
  if (cert.spki.oid === OID.ed25519) return { kind: "ed25519" };
  const hash = HASHES[digestAlgorithm];
  if (!hash) bad("the signer's digest algorithm is not accepted");
  if (cert.spki.oid === OID.ec) return { kind: "ecdsa", hash };
  if (cert.spki.oid !== OID.rsa) throw new Unsupported(`the TSA's key type (${cert.spki.oid}) is not supported`);
  const [algOid, params] = seq(signatureAlgorithm, "time-stamp token: signature algorithm");
  if (oid(algOid) === OID.pss) return { kind: "pss", hash, salts: pssSalts(params, hash, rsaModulusBytes(cert)) };
  return { kind: "pkcs1", hash };
}

/** What a token claims, unchecked: {time, seconds, tsa, serial, policy, hashAlgorithm, imprint}. */
export function readTimestampToken(bytes) {
  const token = parseTokenOrThrow(bytes);
  let tsa = null;
  const si = token.signers[0];
  try {
    if (si) tsa = signerCertificate(token, seq(si, "signer info")[1]).subject.text;
  } catch {
    tsa = null;
  }
  if (tsa === null) {
    // The TSTInfo's optional tsa [0] GeneralName (a directoryName), when no certificate names it.
    const named = token.tst.find((c) => c.cls === CONTEXT && c.tag === 0);
    const dn = named && named.children && named.children[0];
    if (dn && dn.cls === CONTEXT && dn.tag === 4) tsa = nameText(dn.children[0]);
  }
  return claims(token, tsa ?? "an unnamed TSA");
}

function claims(token, tsa) {
  return {
    time: token.genTime.text,
    seconds: token.genTime.seconds,
    tsa,
    serial: token.serial.toString(),
    policy: token.policy,
    hashAlgorithm: token.hashAlgorithm,
    imprint: token.imprint,
  };
}

function parseTokenOrThrow(bytes) {
  try {
    return parseToken(bytes);
  } catch (e) {
    const m = e.message;
    throw new Error(m.startsWith("malformed") || m.startsWith("the token") ? m : `malformed time-stamp token: ${m}`);
  }
}

/**
 * Check a DER token over `stamped` (text) against the `trusted` CA certificates (parsed), as
 * merkle.anchors.rfc3161.verify_token does. Returns what it then establishes (readTimestampToken's
 * fields); throws Error naming the part that does not hold, or Unsupported for what this browser
 * cannot check.
 */
export async function verifyTimestampToken(bytes, stamped, trusted) {
  if (!trusted.length) throw new Error("no trusted TSA CA certificate given");
  try {
    const token = parseToken(bytes);
    if (token.signers.length !== 1) bad("a time-stamp token has exactly one signer");
    const si = seq(token.signers[0], "time-stamp token: signer info");
    if (token.hashAlgorithm !== OID.sha256 || !equalBytes(token.imprint, sha256(utf8.encode(stamped)))) {
      bad("the token's message imprint is not SHA-256 of this checkpoint");
    }
    const cert = signerCertificate(token, si[1]);
    const digestAlgorithm = oid(seq(si[2], "signer info")[0]);
    const signed = si[3] && si[3].cls === CONTEXT && si[3].tag === 0 ? si[3] : null;
    if (!signed || !signed.children.length) bad("the token has no signed attributes");
    const [signatureAlgorithm, signature] = si.slice(4, 6);
    await checkSignedAttributes(attributes(signed), digestAlgorithm, token.tstDer, cert);
    // Signed over the SET OF the attributes (RFC 5652 §5.4), not over their [0] IMPLICIT tag.
    const message = Uint8Array.from(signed.raw);
    message[0] = 0x31;
    const how = scheme(cert, digestAlgorithm, signatureAlgorithm);
    if (!(await verifySignature(cert, how, octets(signature, "signature"), message))) bad("the token's signature does not verify");
    const others = token.certs.map((n) => n.raw).filter((raw) => !equalBytes(raw, cert.der)).map(parseCertificate);
    await verifyTsaChain(cert, others, trusted, token.genTime.seconds);
    return claims(token, cert.subject.text);
  } catch (e) {
    if (e instanceof Unsupported || e instanceof TokenError || e.message.startsWith("the TSA certificate")) throw e;
    throw new Error(e.message.startsWith("malformed") ? e.message : `malformed time-stamp token: ${e.message}`);
  }
}
