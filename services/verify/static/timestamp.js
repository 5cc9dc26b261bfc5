// RFC 3161 time-stamp tokens for the web verifier (inlined as "notar-timestamp"): the DER is parsed
// to show the TSA's name and time and to read the message imprint. The CMS signature and the TSA's
// certificate chain are NOT checked here: `notar verify --tsa-ca CA.pem` checks them
// (merkle/anchors/rfc3161.py). No DOM, no network.

import { equalBytes, hex } from "notar-json";

const OID_SIGNED_DATA = "1.2.840.113549.1.7.2";
const OID_TST_INFO = "1.2.840.113549.1.9.16.1.4";
export const OID_SHA256 = "2.16.840.1.101.3.4.2.1";
const NAME_ATTRS = {
  "2.5.4.3": "CN", "2.5.4.5": "serialNumber", "2.5.4.6": "C", "2.5.4.7": "L", "2.5.4.8": "ST",
  "2.5.4.9": "STREET", "2.5.4.10": "O", "2.5.4.11": "OU", "0.9.2342.19200300.100.1.25": "DC",
  "0.9.2342.19200300.100.1.1": "UID", "1.2.840.113549.1.9.1": "1.2.840.113549.1.9.1",
};

export function der(bytes, at = 0, depth = 0) {
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

