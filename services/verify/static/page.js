// The web verifier's page: files in, verdict out. All checking is in receipt.js; this module only
// reads the files the clerk chooses (the document is hashed here and never sent anywhere), fetches
// the server's public keys and its TSA CA once at load (GET v1/keys and v1/tsa-ca, when served over
// http), and shows the result, with a print view that is the evidence report of the receipt.

import { FAILED, NOT_CHECKED, OK, RECEIPT_FORMAT, formatTime, hashBlob, keysOfDocument, parseJson, parseKeys, parsePemCertificates, parseReceipt, periodsOf, trustOfDocument, trustOfKeys, trustOfPolicy, verifyReceipt } from "notar-receipt";
import { drawTimeline, timeLines, timelineEvents } from "notar-timeline";
import { isCose, verifyTransparent } from "notar-scitt";

const $ = (id) => document.getElementById(id);
const app = $("app");
const fromDisk = location.protocol === "file:";
const MAX_RECEIPT = 32 << 20;
const state = { receipt: null, document: null, serverKeys: null, serverCas: null, running: false, hashRun: 0, trusted: null };

$("noscript").hidden = true;

const MEANING = {
  format: "the file is a notar receipt",
  document: "the document is the one that was notarized",
  entry: "the log entry commits to this fingerprint, its random salt and the notarizing organisation",
  checkpoint: "the signed tree head is of this log and of the receipt's size",
  "log signature": "the tree head is signed by a log key you trust",
  inclusion: "the entry is in that signed tree (RFC 9162 inclusion proof)",
  "signed time": "the service's clock vouched for the tree at that time",
  "issuer signature": "the issuer you trust signed this statement",
  witnesses: "as many independent witnesses as the policy asks cosigned the tree head",
};
const WHY_NOT = {
  format: "This file is not a notar receipt, or it is damaged.",
  document: "The document is not the one that was notarized: it was changed, or it is another file. Even one changed byte gives a different fingerprint.",
  entry: "The receipt was altered: its log entry is not the fingerprint it names.",
  checkpoint: "The receipt's signed tree head is damaged, or belongs to another log.",
  "log signature": "The receipt is not signed by the key you trust: it was altered, it comes from another log, or the key is not the right one.",
  inclusion: "The receipt was altered: the proof that the entry is in the signed log does not hold.",
  "signed time": "No trusted clock signature vouches for the time of this receipt.",
  witnesses: "The witnesses the policy asks for have not cosigned this receipt's tree head: fetch the receipt again (upgraded receipts carry their cosignatures), or it was altered.",
};
const MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"];

const MARKS = { [OK]: "✓", [FAILED]: "✗", [NOT_CHECKED]: "–" };
const SAID = { [OK]: "holds", [FAILED]: "failed", [NOT_CHECKED]: "was not checked" };

function meaning(check) {
  if (check.status === FAILED) return whyNot(check);
  if (check.name.startsWith("receipt") && check.status !== NOT_CHECKED) return "the statement is registered in a log you trust (RFC 9942 COSE receipt)";
  if (check.status === NOT_CHECKED) return check.name.startsWith("anchor") ? "not checked: it proves nothing here" : "";
  if (check.name.endsWith("(local)")) return "the service's own chain: the order of its tree heads, on its word (not independent evidence)";
  return check.name.startsWith("anchor") ? "independent evidence that the tree existed then" : MEANING[check.name] ?? "";
}

/** A few words on a check that was not made, for the verdict. */
function notChecked(check, result) {
  if (check.name === "document") return "the document (none was given)";
  if (check.name === "signed time") return "the signed time (no clock key was given)";
  if (check.name === "witnesses") return "the witnesses (the policy asks for none)";
  const anchor = result.anchors.find((a) => a.check === check);
  const kind = anchor ? anchor.record.type : "";
  let rfc3161 = "this browser cannot check its signature";
  if (check.detail.startsWith("no TSA CA")) rfc3161 = "no time-stamp authority's certificate was given";
  const why = { evm: "its chain is not asked in a browser", rfc3161, local: "not checked" }[kind] ?? "a kind this page does not know";
  return `${check.name}: ${why}`;
}

function whyNot(check) {
  if (check.name.startsWith("anchor")) return "This anchor does not hold: it is no evidence of the time of this tree head.";
  return WHY_NOT[check.name] ?? "A check failed.";
}

function humanTime(ts) {
  const t = BigInt(ts);
  if (t > 253402300799n) return formatTime(t);
  const d = new Date(Number(t) * 1000);
  const two = (n) => String(n).padStart(2, "0");
  return `${d.getUTCDate()} ${MONTHS[d.getUTCMonth()]} ${d.getUTCFullYear()}, ${two(d.getUTCHours())}:${two(d.getUTCMinutes())}:${two(d.getUTCSeconds())} UTC`;
}

function bytesText(n) {
  const units = ["bytes", "KB", "MB", "GB", "TB"];
  let v = n;
  let u = 0;
  while (v >= 1000 && u < units.length - 1) {
    v /= 1000;
    u++;
  }
  return u === 0 ? `${n} bytes` : `${v.toFixed(v < 10 ? 1 : 0)} ${units[u]}`;
}

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else node.setAttribute(k, v);
  }
  for (const c of children) if (c !== null && c !== undefined) node.append(c);
  return node;
}

function setStatus(id, text, error = false) {
  const node = $(id);
  node.textContent = text;
  node.classList.toggle("error", error);
}

// ---------------------------------------------------------------------------------------------
// Keys.

function keyLine(key) {
  return el("li", { text: `${key.clock ? "clock" : "log"} key: ${key.text}` });
}

/** What a trust holds, one line each: every key with its period, the witnesses and the quorum. */
function trustLines(trust, keys) {
  if (!trust.policy) return keys.map(keyLine);
  const span = (p) => `tree sizes ${p.from} ${p.until === null ? "on (active)" : `to ${p.until} (retired)`}`;
  const lines = periodsOf(trust).flatMap((p) => [
    el("li", { text: `log key, ${span(p)}: ${p.log.text}` }),
    ...(p.clock ? [el("li", { text: `clock key, ${span(p)}: ${p.clock.text}` })] : []),
  ]);
  const inHistory = (k) => periodsOf(trust).some((p) => p.log.text === k.text || p.clock?.text === k.text);
  for (const k of trust.policy.logs.filter((k) => !inHistory(k))) lines.push(el("li", { text: `log key: ${k.text}` }));
  for (const w of trust.policy.witnesses.filter((w) => !inHistory(w.key))) lines.push(el("li", { text: `witness ${w.name}: ${w.key.text}` }));
  lines.push(el("li", { text: `witness quorum: ${trust.policy.quorum}` }));
  return lines;
}

/** The trust of pasted text: a /v1/keys document, a tlog-policy, or verifier keys one per line. */
function trustOfText(text) {
  const body = text.trim();
  if (body.startsWith("{")) return { trust: trustOfDocument(parseJson(body)), what: "a keys document (its policy and key history)" };
  const words = body.split("\n").map((l) => l.trim().split(/[ \t]/)[0]);
  if (words.some((w) => ["quorum", "witness", "group"].includes(w))) return { trust: trustOfPolicy(body), what: "a witness policy" };
  const keys = parseKeys(text);
  return { trust: keys.length ? trustOfKeys(keys) : null, keys, what: keys.map((k) => `${k.clock ? "clock" : "log"} key ${k.name}`).join("; ") };
}

async function loadServerKeys() {
  const server = $("keys-server");
  const usePaste = (why, error) => {
    server.disabled = true;
    $("keys-paste").checked = true;
    setStatus("server-keys-status", why, error);
  };
  if (fromDisk) {
    usePaste("This page was opened from a file: paste the keys you trust below.", false);
    return;
  }
  try {
    const res = await fetch(new URL("v1/keys", location.href), { cache: "no-store", credentials: "omit" });
    if (!res.ok) throw new Error(`the server answered ${res.status}`);
    const doc = parseJson(await res.text());
    const keys = keysOfDocument(doc);
    state.serverKeys = typeof doc.policy === "string" ? trustOfDocument(doc) : trustOfKeys(keys);
    $("server-keys").replaceChildren(...trustLines(state.serverKeys, keys));
    setStatus("server-keys-status", "Fetched from this server when the page loaded. Trusting them means trusting this server.");
  } catch (e) {
    usePaste(`Could not get this server's keys (${e.message}): paste the keys you trust below.`, true);
  }
}

function casText(cas) {
  return cas.map((c) => el("li", { text: `${c.subject.text} (valid ${c.notBefore.text.slice(0, 10)} to ${c.notAfter.text.slice(0, 10)})` }));
}

async function loadServerTsa() {
  const usePaste = (why) => {
    $("tsa-server").disabled = true;
    $("tsa-paste").checked = true;
    setStatus("server-tsa-status", why);
  };
  if (fromDisk) {
    usePaste("This page was opened from a file: paste the time-stamp authority's CA certificate below, if the receipt has RFC 3161 anchors.");
    return;
  }
  try {
    const res = await fetch(new URL("v1/tsa-ca", location.href), { cache: "no-store", credentials: "omit" });
    if (res.status === 404) return usePaste("This server publishes no time-stamp authority certificate: paste one below, or RFC 3161 anchors are not checked.");
    if (!res.ok) throw new Error(`the server answered ${res.status}`);
    state.serverCas = parsePemCertificates(await res.text());
    $("server-tsa").replaceChildren(...casText(state.serverCas));
    setStatus("server-tsa-status", "Fetched from this server when the page loaded. Trusting it means trusting this server.");
  } catch (e) {
    usePaste(`Could not get this server's TSA certificate (${e.message}): paste one below, or RFC 3161 anchors are not checked.`);
  }
}

/** The TSA CA certificates chosen (null: none), or undefined when the pasted text is not one. */
function chosenCas() {
  if (!$("tsa-paste").checked) return state.serverCas;
  const area = $("pasted-tsa");
  if (!area.value.trim()) {
    area.removeAttribute("aria-invalid");
    setStatus("pasted-tsa-status", "");
    return null;
  }
  try {
    const cas = parsePemCertificates(area.value);
    area.removeAttribute("aria-invalid");
    setStatus("pasted-tsa-status", cas.map((c) => c.subject.text).join("; ") + ".");
    return cas;
  } catch (e) {
    area.setAttribute("aria-invalid", "true");
    setStatus("pasted-tsa-status", `This is not a certificate: ${e.message}`, true);
    return undefined;
  }
}

$("pasted-tsa").addEventListener("input", () => {
  $("tsa-paste").checked = true;
  chosenCas();
  clearResult();
});
for (const id of ["tsa-server", "tsa-paste"]) $(id).addEventListener("change", clearResult);

/** The trust of the pasted text, null when there is none yet, undefined when it is not usable. */
function pastedKeys() {
  const area = $("pasted-keys");
  try {
    const { trust, what } = trustOfText(area.value);
    area.removeAttribute("aria-invalid");
    setStatus("pasted-keys-status", trust === null ? "" : `${what}.`);
    return trust;
  } catch (e) {
    area.setAttribute("aria-invalid", "true");
    setStatus("pasted-keys-status", `This is not a verifier key, a policy or a keys document: ${e.message}`, true);
    return undefined;
  }
}

$("pasted-keys").addEventListener("input", () => {
  $("keys-paste").checked = true;
  pastedKeys();
  clearResult();
});
for (const id of ["keys-server", "keys-paste"]) $(id).addEventListener("change", clearResult);

// ---------------------------------------------------------------------------------------------
// Files: chosen with the inputs (keyboard: Tab to them, then Space or Enter) or dropped.

function setFile(kind, file) {
  state[kind] = file ?? null;
  if (kind === "document") {
    state.hashRun++;
    $("hashing").hidden = true;
  }
  const none = kind === "receipt" ? "No receipt chosen yet." : "Without the document, only the receipt itself is checked.";
  setStatus(`${kind}-status`, file ? `${file.name} (${bytesText(file.size)})` : none);
  clearResult();
}

for (const kind of ["receipt", "document"]) {
  const input = $(`${kind}-file`);
  input.addEventListener("change", () => setFile(kind, input.files[0]));
  const zone = $(`${kind}-drop`);
  zone.addEventListener("dragover", (e) => {
    e.preventDefault();
    zone.classList.add("over");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("over");
    const files = e.dataTransfer && e.dataTransfer.files;
    if (!files || !files.length) return;
    try {
      input.files = files;
    } catch {
      // Older browsers cannot set a file input; the dropped file is kept all the same.
    }
    setFile(kind, files[0]);
  });
}
// A file dropped beside the zones must not make the browser open it in place of this page.
window.addEventListener("dragover", (e) => e.preventDefault());
window.addEventListener("drop", (e) => e.preventDefault());

async function readReceipt(file) {
  if (file.size > MAX_RECEIPT) return { error: `the file is ${bytesText(file.size)}, far too large for a receipt` };
  try {
    const text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(await file.arrayBuffer());
    return { value: parseJson(text) };
  } catch (e) {
    return { error: `not JSON: ${e.message}` };
  }
}

async function hashDocument(file, algorithm) {
  const run = ++state.hashRun;
  const bar = $("hash-progress");
  $("hashing").hidden = false;
  const name = algorithm === "sha256" ? "SHA-256" : "BLAKE3";
  const show = (done, total) => {
    bar.value = total ? (100 * done) / total : 100;
    $("hash-text").textContent = `Computing the document's ${name} fingerprint on this computer: ${Math.floor(bar.value)}% (${bytesText(done)} of ${bytesText(total)})`;
  };
  const digest = await hashBlob(file, algorithm, show, () => run !== state.hashRun);
  if (digest !== null) $("hash-text").textContent = `Fingerprint computed on this computer: ${digest}`;
  return digest;
}

// ---------------------------------------------------------------------------------------------
// Verify.

function clearResult() {
  $("result").hidden = true;
}

$("form").addEventListener("submit", (e) => {
  e.preventDefault();
  verify();
});

async function verify() {
  if (state.running) return;
  const paste = $("keys-paste").checked;
  let keys;
  if (paste) {
    keys = pastedKeys();
    if (!keys) {
      if (keys === null) setStatus("pasted-keys-status", "Paste at least the log's verifier key.", true);
      $("pasted-keys").focus();
      return;
    }
  } else {
    keys = state.serverKeys;
    if (!keys) {
      setStatus("server-keys-status", "This server's keys are not loaded: paste the keys you trust.", true);
      $("keys-paste").focus();
      return;
    }
  }
  if (!state.receipt) {
    setStatus("receipt-status", "Choose the receipt first.", true);
    $("receipt-file").focus();
    return;
  }
  const tsaCas = chosenCas();
  if (tsaCas === undefined) {
    $("pasted-tsa").focus();
    return;
  }
  state.running = true;
  const button = $("verify");
  button.disabled = true;
  button.textContent = "Checking…";
  $("result").setAttribute("aria-busy", "true");
  const chosen = [state.receipt, state.document];
  try {
    if (isCose(new Uint8Array(await state.receipt.slice(0, 1).arrayBuffer()))) {
      const result = await checkTransparent(keys);
      if (chosen[0] !== state.receipt || chosen[1] !== state.document) return; // files changed meanwhile
      state.trusted = { keys, paste, tsaCas: null, tsaPaste: false };
      showTransparent(result, paste);
      return;
    }
    const read = await readReceipt(state.receipt);
    let digest = null;
    let algorithm = null;
    if (!read.error && state.document) {
      try {
        algorithm = parseReceipt(read.value).digest.algorithm;
      } catch {
        algorithm = null; // the format check fails: the document is not needed
      }
      if (algorithm) {
        digest = await hashDocument(state.document, algorithm);
        if (digest === null) return; // another document was chosen meanwhile
      }
    }
    if (chosen[0] !== state.receipt || chosen[1] !== state.document) return; // files changed meanwhile
    const result = read.error
      ? { valid: false, checks: [{ name: "format", status: FAILED, ok: false, detail: `not a ${RECEIPT_FORMAT} receipt: ${read.error}` }], unchecked: [], anchors: [] }
      : await verifyReceipt(read.value, { keys, documentDigest: digest, tsaCas });
    if (chosen[0] !== state.receipt || chosen[1] !== state.document) return;
    state.trusted = { keys, paste, tsaCas, tsaPaste: $("tsa-paste").checked };
    show(result, { document: digest !== null ? state.document : null, paste });
  } finally {
    state.running = false;
    button.disabled = false;
    button.textContent = "Verify";
    $("result").removeAttribute("aria-busy");
  }
}

// ---------------------------------------------------------------------------------------------
// SCITT transparent statements (scitt.js): a statement carrying its receipts in the receipt slot,
// or a COSE receipt there and its statement in the document slot.

// COSE receipts name no tree size a key period could be checked at before the receipt is
// verified: every log key the trust holds, current or retired, may sign one (as merkle.transparent).
async function checkTransparent(trust) {
  const keys = trust.allLogKeys();
  const bytes = async (file) => new Uint8Array(await file.arrayBuffer());
  if (state.receipt.size > MAX_RECEIPT) return verifyTransparent(new Uint8Array(0), { keys });
  const first = await bytes(state.receipt);
  const doc = state.document;
  if (doc && doc.size <= MAX_RECEIPT) {
    const statement = await bytes(doc);
    if (isCose(statement)) return verifyTransparent(statement, { keys, receipts: [first] });
  }
  return verifyTransparent(first, { keys });
}

function showTransparent(result, paste) {
  const unchecked = result.checks.filter((c) => c.status === NOT_CHECKED);
  $("verdict").className = result.valid ? (unchecked.length ? "valid partly" : "valid") : "invalid";
  $("verdict").dataset.valid = String(result.valid);
  $("result").dataset.valid = String(result.valid);
  $("verdict-title").textContent = !result.valid ? "✗ Not valid" : unchecked.length ? "✓ Valid as far as checked" : "✓ Valid: every check holds";
  let text;
  let detail = "";
  if (result.valid) {
    const r = result.receipts[0];
    text = `The signed statement of “${result.issuer}” about “${result.subject}” is registered as entry ${r.index} of the log ${r.issuer}, in a tree of ${r.treeSize} entries signed by the trusted key ${r.logKey}.`;
  } else {
    const failed = result.checks.find((c) => c.status === FAILED);
    text = failed.name === "format" ? "This file is not a SCITT signed statement notar accepts, or it is damaged." : "A receipt does not hold for this statement: the statement or the receipt was altered, or the receipt comes from a log you do not trust.";
    detail = `The check “${failed.name}” failed: ${failed.detail}.`;
  }
  $("verdict-text").textContent = text;
  $("verdict-unchecked").replaceChildren(...(result.valid ? unchecked.map((c) => el("li", { text: `${c.name}: ${c.detail}` })) : []));
  $("verdict-unchecked").hidden = !result.valid || unchecked.length === 0;
  $("verdict-detail").textContent = detail;
  $("verdict-detail").hidden = !detail;
  $("verdict-note").textContent = paste ? "" : "The keys came from this server, so this trusts the server; for evidence, paste keys you got from a source you trust.";
  $("verdict-note").hidden = paste;
  $("checks").replaceChildren(...result.checks.map(checkItem));
  const rows = [];
  const add = (k, v) => rows.push(el("dt", { text: k }), el("dd", { text: v }));
  if (result.issuer !== null) {
    add("Issuer", result.issuer);
    add("Subject", result.subject);
  }
  for (const r of result.receipts) add("Registered", `entry ${r.index} of ${r.issuer}, tree of ${r.treeSize} entries, signed by ${r.logKey}`);
  add("Keys", paste ? "pasted by you" : "published by this server");
  $("facts").replaceChildren(...rows);
  anchors([]);
  timeline({ origin: null }); // hidden: a statement has no anchors to put in time
  printed(result, null);
  $("result").hidden = false;
  app.dataset.runs = String(Number(app.dataset.runs || "0") + 1);
  $("verdict-title").focus();
}

function show(result, { document: doc, paste }) {
  const verdict = $("verdict");
  const unchecked = result.checks.filter((c) => c.status === NOT_CHECKED);
  verdict.className = result.valid ? (unchecked.length ? "valid partly" : "valid") : "invalid";
  verdict.dataset.valid = String(result.valid);
  $("result").dataset.valid = String(result.valid);
  $("verdict-title").textContent = !result.valid ? "✗ Not valid" : unchecked.length ? "✓ Valid as far as checked" : "✓ Valid: every check holds";
  const text = [];
  let detail = "";
  if (result.valid) {
    const what = doc ? `The document “${doc.name}” is exactly the one notarized by this receipt.` : "The receipt is genuine.";
    text.push(
      `${what} Its fingerprint was notarized by “${result.subject}” as entry ${result.index} of the log ${result.origin}, in a tree of ${result.treeSize} ${String(result.treeSize) === "1" ? "entry" : "entries"} signed by the trusted key ${result.logKey}.`,
    );
    if (result.time !== null) {
      text.push(`The service's clock vouched for that tree on ${humanTime(result.time)}: the ${doc ? "document" : "notarized data"} existed then at the latest.`);
    }
    if (unchecked.length) text.push("Nothing failed, but these were not checked:");
  } else {
    const failed = result.checks.find((c) => c.status === FAILED);
    text.push(whyNot(failed));
    detail = `The check “${failed.name}” failed: ${failed.detail}.`;
  }
  $("verdict-text").textContent = text.join(" ");
  const list = result.valid ? unchecked.map((c) => el("li", { text: notChecked(c, result) })) : [];
  $("verdict-unchecked").replaceChildren(...list);
  $("verdict-unchecked").hidden = list.length === 0;
  $("verdict-detail").textContent = detail;
  $("verdict-detail").hidden = !detail;
  const notes = [];
  if (result.valid && !doc) notes.push("Choose the document above to check that it is the one notarized.");
  if (result.valid && unchecked.some((c) => c.name.startsWith("anchor"))) {
    notes.push("An anchor that was not checked proves nothing here: notar verify --online --tsa-ca checks EVM and RFC 3161 anchors.");
  }
  if (!paste) notes.push("The keys came from this server, so this trusts the server; for evidence, paste keys you got from a source you trust.");
  $("verdict-note").textContent = notes.join(" ");
  $("verdict-note").hidden = notes.length === 0;

  $("checks").replaceChildren(...result.checks.map(checkItem));
  facts(result, doc, paste);
  timeline(result);
  anchors(result.anchors);
  printed(result, doc);
  $("result").hidden = false;
  app.dataset.runs = String(Number(app.dataset.runs || "0") + 1);
  $("verdict-title").focus();
}

function checkItem(c) {
  const why = meaning(c);
  return el(
    "li",
    { "data-check": c.name, "data-status": c.status, "data-ok": String(c.ok) },
    el("span", { class: "mark", "aria-hidden": "true", text: MARKS[c.status] }),
    el(
      "div",
      {},
      el("span", { class: "check-name", text: c.name }),
      el("span", { class: "visually-hidden", text: ` ${SAID[c.status]}. ` }),
      why ? el("div", { class: "meaning", text: why }) : null,
      el("div", { class: "detail", text: c.detail }),
    ),
  );
}

function facts(result, doc, paste) {
  const rows = [];
  const add = (k, v) => rows.push(el("dt", { text: k }), el("dd", { text: v }));
  if (result.origin !== null && result.origin !== undefined) {
    add("Log", result.origin);
    add("Entry number", String(result.index));
    add("Tree size", `${result.treeSize} entries`);
    const clock = result.checks.find((c) => c.name === "signed time");
    const untimed = clock && clock.status === NOT_CHECKED ? "not checked (no clock key given)" : "no valid signature by a trusted clock key";
    add("Signed time", result.time !== null ? `${humanTime(result.time)} (${formatTime(result.time)})` : untimed);
    add("Signed by", result.logKey ?? "no trusted log key");
    add("Notarized by", result.subject);
    add("Fingerprint", result.digest);
  }
  add("Document", doc ? `${doc.name}, ${bytesText(doc.size)}, hashed in this browser` : "not given");
  add("Keys", paste ? "pasted by you" : "published by this server");
  $("facts").replaceChildren(...rows);
}

function explorerLink(txHash) {
  const base = app.dataset.explorer || "";
  if (!/^https?:\/\/[^\s"<>]+$/.test(base) || typeof txHash !== "string" || !/^0x[0-9a-fA-F]{64}$/.test(txHash)) return null;
  return el("a", { href: `${base.replace(/\/+$/, "")}/tx/${txHash}`, rel: "noopener noreferrer", target: "_blank", text: txHash });
}

function anchors(list) {
  $("anchors-block").hidden = list.length === 0;
  $("anchors").replaceChildren(
    ...list.map(({ record, check, info }) => {
      const rows = [];
      const add = (k, v) => {
        if (v !== undefined && v !== null && v !== "") rows.push(el("dt", { text: k }), el("dd", {}, v));
      };
      const str = (v) => (v === undefined || v === null ? null : String(v));
      let title;
      let claims = false;
      if (record.type === "local") {
        title = "Local chain block (kept by the service itself; it is not independent)";
        add("Block", str(record.height));
        add("Time", info ? info.time : str(record.time));
        add("Signed by", info ? info.signer : null);
      } else if (record.type === "evm") {
        title = "Blockchain transaction (EVM)";
        add("Chain", str(record.chain_id));
        add("Contract", str(record.contract));
        add("Transaction", explorerLink(record.tx_hash) ?? str(record.tx_hash));
        add("Block", str(record.block_number));
      } else if (record.type === "rfc3161") {
        title = "RFC 3161 time-stamp";
        claims = !info || !info.checked;
        add("Time-stamping authority", info ? info.tsa : null);
        add("Time", info ? info.time : null);
        add("Serial", info ? info.serial : null);
        add("Authority's address", str(record.tsa));
      } else {
        title = `Anchor of kind ${String(record.type)}`;
      }
      if (record.aggregate !== null && typeof record.aggregate === "object") add("Aggregate", `leaf ${str(record.aggregate.index)} of ${str(record.aggregate.size)} checkpoints`);
      return el(
        "li",
        { "data-anchor": String(record.type), "data-status": check.status, "data-ok": String(check.ok) },
        el("span", { class: "mark", "aria-hidden": "true", text: MARKS[check.status] }),
        el(
          "div",
          {},
          el("strong", { text: title }),
          el("div", { class: "detail", text: check.detail }),
          claims && rows.length ? el("p", { class: "claims", text: "Claims, not checked (anyone can write them):" }) : null,
          el("dl", claims ? { class: "claimed" } : {}, ...rows),
        ),
      );
    }),
  );
}

function timeline(result) {
  const block = $("timeline-block");
  block.hidden = result.origin === null || result.origin === undefined;
  if (block.hidden) return;
  const events = timelineEvents(result);
  drawTimeline($("timeline"), events);
  const said = events.map((e) => `${e.label} (${e.kind}): ${timeLines(e).join(" ")}, ${e.status}`);
  $("timeline-text").textContent = `In order of time: ${said.join("; ")}.`;
}

/** What only the printed report shows: when and how it was checked, and what was trusted. */
function printed(result, doc) {
  const now = new Date();
  const where = fromDisk ? "a saved copy of notar's web verifier" : `notar's web verifier at ${location.origin}${location.pathname}`;
  const file = state.receipt ? `the receipt file “${state.receipt.name}”` : "the receipt";
  $("print-meta").textContent = `Checked on ${humanTime(Math.floor(now.getTime() / 1000))} in a web browser, with ${where}, from ${file}${doc ? ` and the document “${doc.name}”` : ""}.`;
  const t = state.trusted;
  const source = t && t.paste ? "pasted" : "published by this server";
  const keys = t ? trustLines(t.keys, t.keys.keys).map((li) => el("li", { text: `${li.textContent} (${source})` })) : [];
  const cas = t && t.tsaCas ? t.tsaCas.map((c) => el("li", { text: `time-stamp authority's CA (${t.tsaPaste ? "pasted" : "published by this server"}): ${c.subject.text}` })) : [];
  $("print-keys").replaceChildren(...keys, ...(cas.length ? cas : [el("li", { text: "no time-stamp authority's CA" })]));
}

$("print").addEventListener("click", () => window.print());

const SHEET_PX = ((297 - 2 * 10) * 96) / 25.4; // an A4 sheet's height inside verify.css's @page margins

/** The print view (verify.css, html.paper) on or off; on, zoomed down to one sheet when the
 * verdict would spill onto a second (many anchors, long details): measured, not guessed. */
function paper(on) {
  const root = document.documentElement;
  root.classList.toggle("paper", on);
  root.style.removeProperty("--paper-zoom");
  if (!on) return;
  let zoom = 1;
  for (let i = 0; i < 4; i++) {
    const height = app.getBoundingClientRect().height; // in page pixels, zoom included
    if (height <= SHEET_PX) break;
    zoom *= (SHEET_PX - 4) / height;
    root.style.setProperty("--paper-zoom", zoom.toFixed(4));
  }
  app.dataset.paperZoom = zoom.toFixed(2);
}
addEventListener("beforeprint", () => paper(true));
addEventListener("afterprint", () => paper(matchMedia("print").matches));
matchMedia("print").addEventListener("change", (e) => paper(e.matches));

// ---------------------------------------------------------------------------------------------

if (!fromDisk) {
  const save = $("save-page");
  save.href = location.href.split("#")[0];
  save.hidden = false;
}
app.dataset.ready = "false";
Promise.allSettled([loadServerKeys(), loadServerTsa()]).finally(() => {
  app.dataset.ready = "true";
});
