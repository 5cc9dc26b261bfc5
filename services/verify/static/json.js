// Strict JSON and byte helpers for the web verifier (services/verify/page.py inlines this module as
// "notar-json"): JSON read as merkle.strictjson reads it (orjson, no member named twice), hex and
// canonical base64 as merkle/ writes them. No DOM, no network.

export const utf8 = new TextEncoder();
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

// Strict JSON, as orjson reads it: integers stay integers (BigInt beyond 2^53), numbers with a
// fraction or an exponent, and integers beyond 64 bits, are JsonFloat (Python floats, never ints);
// a number that is infinite as a double is refused; objects have no prototype;
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
  const NUMBER = /-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/y;
  const number = () => {
    NUMBER.lastIndex = i;
    const m = NUMBER.exec(text);
    if (!m) fail("bad number");
    i += m[0].length;
    const big = m[1] === undefined && m[2] === undefined ? BigInt(m[0]) : null;
    if (big !== null && big >= -(1n << 63n) && big <= (1n << 64n) - 1n) {
      return Number.isSafeInteger(Number(big)) ? Number(big) : big;
    }
    // As orjson: a fraction, an exponent, or an integer beyond 64 bits is a double, if finite.
    const f = Number(m[0]);
    if (!Number.isFinite(f)) fail("number is infinity when parsed as a double");
    return new JsonFloat(f);
  };
  const v = value(0);
  ws();
  if (i !== n) fail("trailing data");
  return v;
}

// Small helpers.

export const isStr = (v) => typeof v === "string";
export const isInt = (v) => (typeof v === "number" && Number.isInteger(v)) || typeof v === "bigint";
export const isObj = (v) => v !== null && typeof v === "object" && !Array.isArray(v) && !(v instanceof JsonFloat);
export const has = (o, k) => Object.prototype.hasOwnProperty.call(o, k);
export const big = (v) => BigInt(v);

export function hex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

export function fromHex(text) {
  const out = new Uint8Array(text.length / 2);
  for (let k = 0; k < out.length; k++) out[k] = parseInt(text.slice(2 * k, 2 * k + 2), 16);
  return out;
}

export function concat(...parts) {
  const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

export function equalBytes(a, b) {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let k = 0; k < a.length; k++) d |= a[k] ^ b[k];
  return d === 0;
}

export function b64encode(bytes) {
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

export function repr(v) {
  return typeof v === "string" ? `'${v}'` : String(v);
}

export function u32(bytes) {
  return ((bytes[0] << 24) | (bytes[1] << 16) | (bytes[2] << 8) | bytes[3]) >>> 0;
}

export function u64(bytes) {
  let v = 0n;
  for (const b of bytes) v = (v << 8n) | BigInt(b);
  return v;
}

export function formatTime(ts) {
  const t = big(ts);
  if (t > 253402300799n) return `${t} seconds after 1970-01-01T00:00:00Z`;
  return new Date(Number(t) * 1000).toISOString().replace(/\.\d{3}Z$/, "Z");
}

/** Python's text[:n]: the first n code points (not UTF-16 units). */
export function pySlice(text, n) {
  return Array.from(text).slice(0, n).join("");
}
