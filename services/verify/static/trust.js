// What the web verifier trusts (a port of merkle/trust.py, merkle/keyhistory.py and merkle/policy.py):
// verifier keys trusted at every tree size, or a C2SP tlog-policy (`/v1/keys`' `policy`) whose log
// keys count only in their periods of the key history that the signed rotation statements give,
// and whose witness quorum makes the `witnesses` check. Errors are thrown as Error with the words of
// the Python library, so that the page, `notar verify --policy` and POST /v1/verify agree.
import { big, isObj, isStr, repr } from "notar-json";
import { MAX_TREE_SIZE, parseCheckpoint, parseNote, parseVerifierKey, verifyNote } from "notar-log";

const ROTATION_HEADER = "notar.key-rotation.v1";
const FIELDS = ["origin", "from", "old", "log", "clock"];
const DECIMAL = /^(0|[1-9][0-9]{0,18})$/;
const THRESHOLD = /^[1-9][0-9]{0,5}$/;
const NONE = "none";
const MAX_ITEMS = 1024;
export const WITNESS_CHECK = "witnesses";
const OK = "ok";
const FAILED = "failed";
const NOT_CHECKED = "not checked";

const clockName = (origin) => `${origin}/clock`;
const same = (a, b) => a.type === b.type && a.name === b.name && a.keyId === b.keyId && a.text === b.text;
const signer = (key) => (s) => s.name === key.name && s.keyId === key.keyId;

// ---------------------------------------------------------------------------------------------
// C2SP tlog-policy (merkle/policy.py).

/** A tlog-policy text, parsed strictly: {logs: [key], witnesses: [{name, key}], groups: [{name,
 * threshold, members}], quorum}; throws "policy line N: …". */
export function parsePolicy(text) {
  const logs = [];
  const witnesses = [];
  const groups = [];
  const names = new Set();
  let quorum = null;
  const bad = /[\x00-\x08\x0b-\x1f\x7f]/.exec(text);
  if (bad) {
    const at = text.slice(0, bad.index).split("\n").length;
    throw new Error(`policy line ${at}: control character ${repr(bad[0])} (only tab and newline)`);
  }
  text.split("\n").forEach((line, k) => {
    const items = line.replace(/^[ \t]+|[ \t]+$/g, "").split(/[ \t]+/);
    if ((items.length === 1 && items[0] === "") || items[0].startsWith("#")) return;
    try {
      const [keyword, ...args] = items;
      if (keyword === "log") {
        if (!args.length) throw new Error("`log <vkey> [<url>]` needs a key");
        const key = parseVerifierKey(args[0]);
        if (logs.some((l) => l.text === key.text || sameMaterial(l, key))) throw new Error("this log key is listed twice");
        if (args.length > 2) throw new Error("`log <vkey> [<url>]` takes at most one URL after the key");
        logs.push(key);
      } else if (keyword === "witness") {
        if (args.length < 2) throw new Error("`witness <name> <vkey> [<url>]` needs a name and a key");
        const name = newName(args[0], names);
        const key = parseVerifierKey(args[1]);
        if (!key.clock) throw new Error(`witness ${repr(name)}: the key is not a cosignature key (type 0x04 or 0x06)`);
        if (witnesses.some((w) => sameMaterial(w.key, key))) throw new Error(`witness ${repr(name)}: this key is listed twice`);
        if (args.length > 3) throw new Error("`witness <name> <vkey> [<url>]` takes at most one URL after the key");
        witnesses.push({ name, key });
        names.add(name);
      } else if (keyword === "group") {
        if (args.length < 3) throw new Error("`group <name> all|any|<k> <name>…` needs a name, a threshold and members");
        const name = newName(args[0], names);
        const [k, ...members] = args.slice(1);
        for (const m of members) if (!names.has(m)) throw new Error(`group ${repr(name)}: ${repr(m.slice(0, 40))} is not a witness or group defined above`);
        if (new Set(members).size !== members.length) throw new Error(`group ${repr(name)} lists a member twice`);
        let threshold;
        if (k === "all" || k === "any") threshold = k === "all" ? members.length : 1;
        else if (THRESHOLD.test(k) && Number(k) <= members.length) threshold = Number(k);
        else throw new Error(`group ${repr(name)}: threshold ${repr(k.slice(0, 20))} is not all, any or 1..${members.length}`);
        groups.push({ name, threshold, members });
        names.add(name);
      } else if (keyword === "quorum") {
        if (quorum !== null) throw new Error("a policy has exactly one quorum line");
        if (args.length !== 1 || (args[0] !== NONE && !names.has(args[0]))) throw new Error("`quorum <name>` names `none`, or a witness or group defined above");
        quorum = args[0];
      } else {
        throw new Error(`unknown keyword ${repr(keyword.slice(0, 40))} (log, witness, group, quorum)`);
      }
      if (Math.max(logs.length, witnesses.length, groups.length) > MAX_ITEMS) throw new Error(`more than ${MAX_ITEMS} logs, witnesses or groups`);
    } catch (e) {
      throw new Error(`policy line ${k + 1}: ${e.message}`);
    }
  });
  if (quorum === null) throw new Error("the policy has no quorum line");
  return { logs, witnesses, groups, quorum };
}

function sameMaterial(a, b) {
  return a.publicKey.length === b.publicKey.length && a.publicKey.every((x, i) => x === b.publicKey[i]);
}

function newName(name, names) {
  if (name === NONE || names.has(name)) throw new Error(`the name ${repr(name.slice(0, 40))} is ${name === NONE ? "reserved" : "already defined"}`);
  return name;
}

function quorumMet(policy, cosigned) {
  const witnessed = new Set(policy.witnesses.filter((w) => cosigned.includes(w.name)).map((w) => w.name));
  for (const g of policy.groups) if (g.members.filter((m) => witnessed.has(m)).length >= g.threshold) witnessed.add(g.name);
  return policy.quorum === NONE || witnessed.has(policy.quorum);
}

/** The `witnesses` check of a signed checkpoint (merkle.policy.check_witnesses): {name, status, detail}. */
export function checkWitnesses(note, policy) {
  if (policy === null) return { name: WITNESS_CHECK, status: NOT_CHECKED, detail: "no witness policy given" };
  let cosigned;
  let invalid;
  try {
    const parsed = parseNote(note);
    parseCheckpoint(parsed.text);
    const opened = verifyNote(parsed, policy.witnesses.map((w) => w.key));
    const nameOf = (s) => policy.witnesses.find((w) => signer(w.key)(s)).name;
    cosigned = opened.verified.map(nameOf);
    invalid = opened.invalid.map(nameOf);
  } catch (e) {
    return { name: WITNESS_CHECK, status: FAILED, detail: `not a signed checkpoint: ${e.message}` };
  }
  const by = cosigned.join(", ") || "no witness of the policy";
  if (invalid.length) return { name: WITNESS_CHECK, status: FAILED, detail: `the cosignature of ${invalid.join(", ")} does not verify` };
  if (policy.quorum === NONE) return { name: WITNESS_CHECK, status: NOT_CHECKED, detail: `the policy asks for no witness (quorum none); cosigned by ${by}` };
  const met = quorumMet(policy, cosigned);
  return { name: WITNESS_CHECK, status: met ? OK : FAILED, detail: `cosigned by ${by}: quorum ${policy.quorum} is ${met ? "met" : "not met"}` };
}

// ---------------------------------------------------------------------------------------------
// Rotation statements and key histories (merkle/keyhistory.py).

/** The statement of a signed rotation note, parsed strictly (its signatures not checked). */
export function readRotation(note) {
  const text = parseNote(note).text;
  const header = text.slice(0, -1).split("\n");
  if (header[0] !== ROTATION_HEADER) throw new Error(`not a rotation statement: the first line is not ${repr(ROTATION_HEADER)}`);
  const lines = header.slice(1);
  if (lines.length !== FIELDS.length) throw new Error(`a rotation statement has ${FIELDS.length + 1} lines, not ${lines.length + 1}`);
  const values = {};
  FIELDS.forEach((expected, k) => {
    const line = lines[k];
    const space = line.indexOf(" ");
    const value = space < 0 ? "" : line.slice(space + 1);
    if (line.slice(0, space) !== expected || space < 0 || !value || value.includes(" ")) throw new Error(`rotation statement: expected \`${expected} <value>\`, got ${repr(line.slice(0, 80))}`);
    values[expected] = value;
  });
  if (!DECIMAL.test(values.from) || BigInt(values.from) > MAX_TREE_SIZE) throw new Error(`rotation statement: tree size ${repr(values.from.slice(0, 30))} is not a decimal`);
  const r = { origin: values.origin, fromSize: BigInt(values.from), old: parseVerifierKey(values.old), log: parseVerifierKey(values.log), clock: parseVerifierKey(values.clock), text };
  for (const [what, key] of [["old", r.old], ["log", r.log]]) {
    if (key.clock || key.name !== r.origin) throw new Error(`rotation: the ${what} key must be an Ed25519 log key named ${repr(r.origin)}`);
  }
  if (!r.clock.clock || r.clock.name !== clockName(r.origin)) throw new Error(`rotation: the clock key must be a cosignature key named ${repr(clockName(r.origin))}`);
  if (sameMaterial(r.old, r.log)) throw new Error("rotation: the new log key is the old one");
  return r;
}

function rotate(history, note) {
  const current = history.periods[history.periods.length - 1];
  const r = readRotation(note);
  if (!same(r.old, current.log)) throw new Error(`the rotation retires ${r.old.text}, not ${current.log.text}`);
  const opened = verifyNote(parseNote(note), [current.log]);
  if (!opened.verified.length || opened.invalid.length) throw new Error(`the rotation is not signed by the old log key ${current.log.text}`);
  if (r.origin !== history.origin) throw new Error(`the rotation is for ${repr(r.origin)}, not ${repr(history.origin)}`);
  if (r.fromSize < current.from) throw new Error(`the rotation hands over at size ${r.fromSize}, before the current key's start at ${current.from}: statements out of order`);
  const used = history.periods.flatMap((p) => (p.clock ? [p.log, p.clock] : [p.log]));
  if (used.some((k) => sameMaterial(k, r.log) || sameMaterial(k, r.clock))) throw new Error("the rotation introduces a key this log already used");
  const ended = { ...current, until: r.fromSize };
  return { origin: history.origin, periods: [...history.periods.slice(0, -1), ended, { log: r.log, clock: r.clock, from: r.fromSize, until: null }] };
}

/** The history from `first` (and its clock key, or null) through `statements`, in order. */
export function keyHistory(first, statements, clock = null) {
  if (clock !== null && clock.name !== clockName(first.name)) throw new Error(`the clock key of ${repr(first.name)} is named ${repr(clockName(first.name))}`);
  let history = { origin: first.name, periods: [{ log: first, clock, from: 0n, until: null }] };
  statements.forEach((s, k) => {
    try {
      history = rotate(history, s);
    } catch (e) {
      throw new Error(`rotation statement ${k + 1}: ${e.message}`);
    }
  });
  return history;
}

// ---------------------------------------------------------------------------------------------
// Trust (merkle/trust.py).

const covers = (p, size) => p.from <= size && (p.until === null || size <= p.until);

function makeTrust(logs, clocks, histories, policy) {
  const history = (origin) => histories.find((h) => h.origin === origin) ?? null;
  const at = (origin, size) => (history(origin)?.periods ?? []).filter((p) => covers(p, big(size)));
  return {
    policy,
    histories,
    keys: [...logs, ...clocks], // trusted at every size, outside any key history
    logKeys: (origin, size) => [...logs, ...at(origin, size).map((p) => p.log)],
    clockKeys: (origin, size) => [...clocks, ...at(origin, size).filter((p) => p.clock).map((p) => p.clock)],
    allLogKeys: () => [...logs, ...histories.flatMap((h) => h.periods.map((p) => p.log))],
    /** Why a history key's valid signature on `note` does not count (merkle.trust.Trust.outside_period). */
    outsidePeriod(note, origin, size, clock = false) {
      const h = history(origin);
      if (h === null) return null;
      const periods = h.periods.filter((p) => !covers(p, big(size)) && (clock ? p.clock : p.log));
      let opened;
      try {
        opened = verifyNote(parseNote(note), periods.map((p) => (clock ? p.clock : p.log)));
      } catch {
        return null;
      }
      for (const sig of opened.verified) {
        const p = periods.find((q) => signer(clock ? q.clock : q.log)(sig));
        const key = clock ? p.clock : p.log;
        const until = p.until === null ? "on" : `to ${p.until}`;
        return `${clock ? "cosigned" : "signed"} by ${clock ? "clock" : "log"} key ${key.text}, which ${clock ? "cosigns" : "signs"} ${origin} only for tree sizes ${p.from} ${until} (its key history): this checkpoint is of size ${size}, outside that period`;
      }
      return null;
    },
  };
}

/** Keys (from parseVerifierKey) trusted at every tree size. */
export function trustOfKeys(keys) {
  return makeTrust(keys.filter((k) => !k.clock), keys.filter((k) => k.clock), [], null);
}

/** The trust of a policy (text or parsed) and its logs' rotation statements (Trust.from_policy). */
export function trustOfPolicy(policy, statements = []) {
  const p = isStr(policy) ? parsePolicy(policy) : policy;
  const byOrigin = new Map();
  for (const s of statements) {
    const origin = readRotation(s).origin;
    byOrigin.set(origin, [...(byOrigin.get(origin) ?? []), s]);
  }
  const origins = new Set(p.logs.map((k) => k.name));
  const clocks = p.witnesses.map((w) => w.key).filter((k) => [...origins].some((o) => k.name === clockName(o)));
  const histories = [];
  for (const [origin, chain] of byOrigin) {
    const first = readRotation(chain[0]).old;
    if (!p.logs.some((k) => k.name === origin && sameMaterial(k, first))) throw new Error(`the rotation statements of ${repr(origin)} do not start from a log key of the policy`);
    const named = chain.map((s) => readRotation(s).clock);
    const firstClocks = clocks.filter((c) => c.name === clockName(origin) && !named.some((n) => sameMaterial(n, c)));
    histories.push(keyHistory(first, chain, firstClocks.length === 1 ? firstClocks[0] : null));
  }
  const inHistory = histories.flatMap((h) => h.periods.flatMap((q) => (q.clock ? [q.log, q.clock] : [q.log])));
  const free = (k) => !inHistory.some((h) => sameMaterial(h, k));
  return makeTrust(p.logs.filter(free), clocks.filter(free), histories, p);
}

/** What a /v1/keys document says to trust: its policy and its rotation statements (document_trust). */
export function trustOfDocument(doc) {
  if (!isObj(doc) || !isStr(doc.policy)) throw new Error('expected a keys document {"logs": [...], "policy": "...", "rotations": [...]}');
  const rotations = doc.rotations ?? [];
  if (!Array.isArray(rotations) || !rotations.every(isStr)) throw new Error("'rotations' is not a list of signed rotation statements");
  return trustOfPolicy(doc.policy, rotations);
}

/** Every period of every history of a trust, for display: [{origin, log, clock, from, until}]. */
export function periodsOf(trust) {
  return trust.histories.flatMap((h) => h.periods.map((p) => ({ origin: h.origin, log: p.log, clock: p.clock, from: p.from, until: p.until })));
}
