// DER, as X.509 certificates and CMS time-stamp tokens are encoded (inlined as "notar-der"): a
// strict reader (definite minimal lengths, low tag numbers, no trailing bytes), object
// identifiers, integers, strings, names as RFC 4514 text, times, and PEM. No DOM, no network.

import { hex } from "notar-json";

const NAME_ATTRS = {
  "2.5.4.3": "CN", "2.5.4.5": "serialNumber", "2.5.4.6": "C", "2.5.4.7": "L", "2.5.4.8": "ST",
  "2.5.4.9": "STREET", "2.5.4.10": "O", "2.5.4.11": "OU", "0.9.2342.19200300.100.1.25": "DC",
  "0.9.2342.19200300.100.1.1": "UID", "1.2.840.113549.1.9.1": "1.2.840.113549.1.9.1",
};
export const UNIVERSAL = 0;
export const CONTEXT = 2;
const MAX_DEPTH = 40;

/** One DER element at `at` of `bytes`: {cls, constructed, tag, start, end, raw, value, children}
 * (`children` when constructed). Throws on anything that is not strict DER. */
export function der(bytes, at = 0, depth = 0) {
  if (depth > MAX_DEPTH) throw new Error("DER nested too deep");
  if (at + 2 > bytes.length) throw new Error("DER truncated");
  const id = bytes[at];
  if ((id & 0x1f) === 0x1f) throw new Error("DER high tag numbers are not used here");
  let len = bytes[at + 1];
  let head = 2;
  if (len & 0x80) {
    const count = len & 0x7f;
    if (count === 0 || count > 4) throw new Error("DER length form not allowed");
    if (at + 2 + count > bytes.length) throw new Error("DER truncated");
    if (bytes[at + 2] === 0) throw new Error("DER length not minimal");
    len = 0;
    for (let k = 0; k < count; k++) len = len * 256 + bytes[at + 2 + k];
    if (len < 0x80) throw new Error("DER length not minimal");
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

/** The one DER element that is all of `bytes`. */
export function derWhole(bytes, what) {
  const node = der(bytes);
  if (node.end !== bytes.length) throw new Error(`${what}: trailing bytes after the DER`);
  return node;
}

/** `node` when it is of class `cls` and tag `tag`, else throws "malformed WHAT". */
export function expect(node, cls, tag, what) {
  if (!node || node.cls !== cls || node.tag !== tag) throw new Error(`malformed ${what}`);
  return node;
}

export const seq = (node, what) => expect(node, UNIVERSAL, 16, what).children;

export function oid(node, what = "object identifier") {
  const v = expect(node, UNIVERSAL, 6, what).value;
  if (!v.length || v[v.length - 1] & 0x80) throw new Error(`malformed ${what}`);
  const parts = [];
  let acc = 0n;
  let fresh = true;
  for (const b of v) {
    if (fresh && b === 0x80) throw new Error(`malformed ${what}`);
    acc = (acc << 7n) | BigInt(b & 0x7f);
    fresh = !(b & 0x80);
    if (fresh) {
      parts.push(acc);
      acc = 0n;
    }
  }
  const first = parts.shift();
  const head = first < 40n ? [0n, first] : first < 80n ? [1n, first - 40n] : [2n, first - 80n];
  return [...head, ...parts].join(".");
}

/** The bytes of an INTEGER's content (two's complement, minimal). */
export function integerBytes(node, what = "integer") {
  const v = expect(node, UNIVERSAL, 2, what).value;
  if (!v.length || (v.length > 1 && ((v[0] === 0 && !(v[1] & 0x80)) || (v[0] === 0xff && v[1] & 0x80)))) throw new Error(`malformed ${what}`);
  return v;
}

export function integer(node, what = "integer") {
  return twosComplement(integerBytes(node, what));
}

/** The value of an INTEGER's content bytes (two's complement, big-endian). */
export function twosComplement(v) {
  let n = 0n;
  for (const b of v) n = (n << 8n) | BigInt(b);
  if (v[0] & 0x80) n -= 1n << BigInt(8 * v.length);
  return n;
}

export function boolean(node, what = "boolean") {
  const v = expect(node, UNIVERSAL, 1, what).value;
  if (v.length !== 1 || (v[0] !== 0 && v[0] !== 0xff)) throw new Error(`malformed ${what}`);
  return v[0] === 0xff;
}

export const octets = (node, what) => expect(node, UNIVERSAL, 4, what).value;

/** A BIT STRING's bits as bytes, and how many bits of the last byte are unused. */
export function bitString(node, what = "bit string") {
  const v = expect(node, UNIVERSAL, 3, what).value;
  if (!v.length || v[0] > 7 || (v.length === 1 && v[0] !== 0)) throw new Error(`malformed ${what}`);
  return { bytes: v.subarray(1), unused: v[0] };
}

function stringValue(node) {
  const decoders = { 12: "utf-8", 19: "latin1", 22: "latin1", 20: "latin1", 26: "latin1" };
  if (node.tag === 30) {
    let s = "";
    for (let k = 0; k + 1 < node.value.length; k += 2) s += String.fromCharCode((node.value[k] << 8) | node.value[k + 1]);
    return s;
  }
  if (node.cls === UNIVERSAL && decoders[node.tag]) return new TextDecoder(decoders[node.tag]).decode(node.value);
  return "#" + hex(node.raw);
}

/** An X.501 Name as RFC 4514 text (last RDN first), as Python's `rfc4514_string`. */
export function nameText(node) {
  const rdns = seq(node, "name").map((set) =>
    expect(set, UNIVERSAL, 17, "name").children
      .map((atv) => {
        const [type, value] = seq(atv, "name");
        const name = oid(type, "name");
        const text = stringValue(value).replace(/([,+"\\<>;])/g, "\\$1").replace(/^([ #])/, "\\$1").replace(/ $/, "\\ ");
        return `${NAME_ATTRS[name] ?? name}=${text}`;
      })
      .join("+"),
  );
  return rdns.reverse().join(",");
}

const TIME = /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\.\d*[1-9])?Z$/;

function seconds(y, mo, d, h, mi, s, what) {
  const ms = Date.UTC(y, mo - 1, d, h, mi, s);
  const back = new Date(ms);
  if (y < 1 || back.getUTCFullYear() !== y || back.getUTCMonth() !== mo - 1 || back.getUTCDate() !== d || h > 23 || mi > 59 || s > 59) {
    throw new Error(`malformed ${what}: not a date`);
  }
  return Math.floor(ms / 1000);
}

/** A GeneralizedTime ("YYYYMMDDHHMMSS[.f]Z") or UTCTime ("YYMMDDHHMMSSZ") as {seconds since the
 * epoch (the fraction dropped), year, generalized, text (ISO 8601, to the second)}. */
export function time(node, what = "time") {
  if (!node || node.cls !== UNIVERSAL || (node.tag !== 24 && node.tag !== 23)) throw new Error(`malformed ${what}`);
  let text = new TextDecoder("latin1").decode(node.value);
  const generalized = node.tag === 24;
  if (!generalized) {
    if (!/^\d{12}Z$/.test(text)) throw new Error(`malformed ${what}: not a UTCTime`);
    text = (Number(text.slice(0, 2)) >= 50 ? "19" : "20") + text;
  }
  const m = TIME.exec(text);
  if (!m) throw new Error(`malformed ${what}: not a UTC time`);
  const [y, mo, d, h, mi, s] = m.slice(1, 7).map(Number);
  return {
    seconds: seconds(y, mo, d, h, mi, s, what),
    year: y,
    generalized,
    fraction: Boolean(m[7]),
    text: `${m[1]}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:${m[6]}Z`,
  };
}

/** The DER of each "CERTIFICATE" block of PEM text; throws when there is none or one is damaged. */
export function pemCertificates(text) {
  const blocks = [...text.matchAll(/-----BEGIN CERTIFICATE-----([\s\S]*?)-----END CERTIFICATE-----/g)];
  if (!blocks.length) throw new Error("no PEM certificate found (-----BEGIN CERTIFICATE----- …)");
  return blocks.map((m, k) => {
    const body = m[1].replace(/\s+/g, "");
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(body) || body.length % 4) throw new Error(`certificate ${k + 1} is not base64`);
    return Uint8Array.from(atob(body), (c) => c.charCodeAt(0));
  });
}
