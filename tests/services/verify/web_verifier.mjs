// Drives the web verifier (GET /verify) in Debian's Chromium with playwright-core, as a clerk would.
//
//   node tests/services/verify/web_verifier.mjs PLAN.json
//
// PLAN.json is written by the web_run fixture (conftest.py), which started `notar serve`, notarized
// the files and built the corpus. This script asserts the browser cases itself (exit 1 naming the case that
// failed), saves a screenshot of each verdict, and writes the page's verdict on every corpus
// receipt to plan.results for the pytest side to compare with `notar verify`.
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { chromium } from "playwright-core";

const plan = JSON.parse(readFileSync(process.argv[2], "utf8"));
const ARGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
];
const profile = mkdtempSync(join(tmpdir(), "notar-chromium-"));
const log = (...a) => console.log("[web verifier]", ...a);

const context = await chromium.launchPersistentContext(profile, {
  executablePath: "/usr/bin/chromium",
  headless: true,
  args: ARGS,
  viewport: { width: 1024, height: 900 },
  acceptDownloads: false,
});
context.setDefaultTimeout(60_000);

// Every request any page makes, with its body: none may carry a document's bytes.
const requests = [];
context.on("request", (r) => requests.push({ url: r.url(), method: r.method(), body: r.postDataBuffer(), headers: r.headers() }));
const errors = [];

async function newPage(url, viewport) {
  const page = await context.newPage();
  if (viewport) await page.setViewportSize(viewport);
  page.on("pageerror", (e) => errors.push(`${url}: ${e.message}`));
  page.on("console", (m) => {
    if (m.type() === "error") errors.push(`${url}: console: ${m.text()}`);
  });
  await page.goto(url);
  await page.waitForSelector("#app[data-ready=true]");
  return page;
}

const shot = (page, name) => page.screenshot({ path: join(plan.screenshots, `${name}.png`), fullPage: true });

async function result(page) {
  return page.evaluate(() => ({
    valid: document.getElementById("result").dataset.valid === "true",
    verdict: document.getElementById("verdict").innerText,
    checks: [...document.querySelectorAll("#checks li")].map((li) => [li.dataset.check, li.dataset.status]),
    unchecked: [...document.querySelectorAll("#verdict-unchecked li")].map((li) => li.textContent),
    focused: document.activeElement && document.activeElement.id,
  }));
}

/** Choose the files, the keys (null: the server's) and the TSA CA (a PEM file to paste; "server":
 * the server's; "none": an empty paste box; null: leave the choice as it is), press Verify, wait
 * for this run's verdict. */
async function verify(page, { receipt, document = null, keys = null, ca = null }) {
  const runs = await page.evaluate(() => document.getElementById("app").dataset.runs || "0");
  await page.setInputFiles("#receipt-file", receipt);
  await page.setInputFiles("#document-file", document ? document : []);
  if (keys) await page.fill("#pasted-keys", keys.join("\n"));
  else await page.check("#keys-server");
  if (ca === "server") await page.check("#tsa-server");
  else if (ca === "none") {
    await page.check("#tsa-paste"); // filling an empty box with nothing changes no choice
    await page.fill("#pasted-tsa", "");
  }
  else if (ca) await page.fill("#pasted-tsa", readFileSync(ca, "utf8"));
  await page.click("#verify");
  await page.waitForFunction((before) => (document.getElementById("app").dataset.runs || "0") !== before, runs);
  return result(page);
}

function failed(r) {
  return r.checks.filter(([, status]) => status === "failed").map(([name]) => name);
}

function unchecked(r) {
  return r.checks.filter(([, status]) => status === "not checked").map(([name]) => name);
}

async function step(name, fn) {
  log(name);
  try {
    await fn();
  } catch (e) {
    e.message = `case "${name}": ${e.message}`;
    throw e;
  }
}

const c = plan.cases;
const served = plan.url + "/verify";
try {
  await step("valid receipt and file, the server's keys", async () => {
    const page = await newPage(served);
    const r = await verify(page, c.valid);
    assert.ok(r.valid, r.verdict);
    assert.match(r.verdict, /^✓ Valid: every check holds/);
    assert.match(r.verdict, /existed then at the latest/);
    assert.match(r.verdict, /notarized by “court”/);
    // the server's keys document carries its policy: its quorum (the clock) makes the witnesses check
    const names = ["format", "document", "entry", "checkpoint", "log signature", "inclusion", "signed time", "witnesses"];
    assert.deepEqual(r.checks, names.map((n) => [n, "ok"]));
    assert.deepEqual(r.unchecked, []);
    assert.equal(r.focused, "verdict-title", "the verdict takes the focus");
    await shot(page, "valid");
    await page.close();
  });

  await step("a pasted witness policy: not valid until a witness cosigned, valid once it did", async () => {
    const w = c.witness_policy;
    const page = await newPage(served);
    const plain = await verify(page, { receipt: w.plain, document: w.document, keys: [w.policy] });
    assert.ok(!plain.valid, plain.verdict);
    assert.deepEqual(failed(plain), ["witnesses"]);
    assert.match(plain.verdict, /witnesses the policy asks for have not cosigned/);
    assert.match(await page.textContent("#pasted-keys-status"), /a witness policy/);
    await shot(page, "witness-policy-not-met");
    const cosigned = await verify(page, { receipt: w.witnessed, document: w.document, keys: [w.policy] });
    assert.ok(cosigned.valid, cosigned.verdict);
    assert.deepEqual(cosigned.checks.find(([n]) => n === "witnesses"), ["witnesses", "ok"]);
    assert.match(await page.textContent('#checks li[data-check="witnesses"]'), /cosigned by .*w1: quorum both is met/);
    await shot(page, "witness-policy-met");
    await page.close();
  });

  await step("valid, but without the document or the clock key: valid as far as checked", async () => {
    const page = await newPage(served);
    const r = await verify(page, { ...c.without_document, keys: [plan.keys.live[0]] });
    assert.ok(r.valid, r.verdict);
    assert.match(r.verdict, /^✓ Valid as far as checked/);
    assert.doesNotMatch(r.verdict, /every check holds/);
    assert.deepEqual(unchecked(r), ["document", "signed time"]);
    assert.deepEqual(r.unchecked, ["the document (none was given)", "the signed time (no clock key was given)"]);
    const grey = await page.evaluate(() => getComputedStyle(document.querySelector('#checks li[data-status="not checked"]')).color);
    assert.equal(grey, "rgb(110, 119, 129)", "not checked is shown in grey");
    assert.equal(await page.textContent('#checks li[data-check="document"] .mark'), "–");
    await shot(page, "valid-as-far-as-checked");
    await page.close();
  });

  await step("a v1 receipt is refused, naming its version", async () => {
    const page = await newPage(served);
    const r = await verify(page, { ...c.v1, keys: plan.keys.main });
    assert.ok(!r.valid);
    assert.deepEqual(r.checks, [["format", "failed"]]);
    assert.match(await page.textContent("#verdict-detail"), /notar\.receipt\.v1 is a pre-release format that is not accepted/);
    await shot(page, "v1-refused");
    await page.close();
  });

  await step("one flipped byte in the file", async () => {
    const page = await newPage(served);
    const r = await verify(page, c.changed);
    assert.ok(!r.valid);
    assert.match(r.verdict, /^✗ Not valid/);
    assert.deepEqual(failed(r), ["document"]);
    assert.match(r.verdict, /The check “document” failed/);
    await shot(page, "changed-file");
    await page.close();
  });

  await step("a tampered proof", async () => {
    const page = await newPage(served);
    const r = await verify(page, c.tampered_proof);
    assert.ok(!r.valid);
    assert.deepEqual(failed(r), ["inclusion"]);
    assert.match(r.verdict, /The check “inclusion” failed/);
    await shot(page, "tampered-proof");
    await page.close();
  });

  await step("a tampered receipt (another index)", async () => {
    const page = await newPage(served);
    const r = await verify(page, c.tampered_index);
    assert.ok(!r.valid);
    assert.deepEqual(failed(r), ["inclusion"]);
    await shot(page, "tampered-index");
    await page.close();
  });

  await step("a wrong pasted key", async () => {
    const page = await newPage(served);
    const r = await verify(page, c.wrong_key);
    assert.ok(!r.valid);
    assert.ok(failed(r).includes("log signature"), failed(r).join());
    assert.match(r.verdict, /The check “log signature” failed/);
    await shot(page, "wrong-key");
    await page.close();
  });

  await step("a receipt from another log", async () => {
    const page = await newPage(served);
    const r = await verify(page, c.other_log);
    assert.ok(!r.valid);
    assert.ok(failed(r).includes("log signature"), failed(r).join());
    await shot(page, "other-log");
    await page.close();
  });

  await step("the receipt dropped on its zone", async () => {
    const page = await newPage(served);
    const text = readFileSync(c.valid.receipt, "utf8");
    await page.evaluate((json) => {
      const dt = new DataTransfer();
      dt.items.add(new File([json], "dropped.receipt.json", { type: "application/json" }));
      document.getElementById("receipt-drop").dispatchEvent(new DragEvent("drop", { dataTransfer: dt, bubbles: true, cancelable: true }));
    }, text);
    assert.match(await page.textContent("#receipt-status"), /dropped\.receipt\.json/);
    await page.click("#verify");
    await page.waitForSelector("#result[data-valid]:not([hidden])");
    const r = await result(page);
    assert.ok(r.valid, r.verdict);
    assert.deepEqual(unchecked(r), ["document"], "no document was given");
    assert.match(r.verdict, /^✓ Valid as far as checked/);
    assert.match(r.verdict, /Choose the document above/);
    await page.close();
  });

  await step("a large file shows progress while hashing", async () => {
    const page = await newPage(served);
    await page.setInputFiles("#receipt-file", c.large.receipt);
    await page.setInputFiles("#document-file", c.large.document);
    await page.check("#keys-server");
    await page.click("#verify");
    await page.waitForFunction(() => {
      const bar = document.getElementById("hash-progress");
      return !document.getElementById("hashing").hidden && bar.value > 0 && bar.value < 100;
    }, null, { polling: 20 });
    assert.match(await page.textContent("#hash-text"), /\d+% \(.* of .*MB\)/);
    await shot(page, "hashing-progress");
    await page.waitForSelector("#result[data-valid]:not([hidden])");
    const r = await result(page);
    assert.ok(r.valid, r.verdict);
    assert.equal(await page.evaluate(() => document.getElementById("hash-progress").value), 100);
    await page.close();
  });

  await step("keyboard only", async () => {
    const page = await newPage(served);
    const order = [];
    const tabTo = async (id) => {
      for (let k = 0; k < 12; k++) {
        await page.keyboard.press("Tab");
        const at = await page.evaluate(() => document.activeElement && document.activeElement.id);
        order.push(at);
        if (at === id) return;
      }
      throw new Error(`Tab never reached #${id}; focus went ${order.join(" → ")}`);
    };
    // The native file dialog that Space opens is Chromium's, not ours, and under load its "filechooser"
    // event has been lost (a 60 s timeout in CI): the file goes to the control that Tab focused instead.
    const choose = async (file) => {
      await page.locator(":focus").setInputFiles(file);
    };
    await tabTo("receipt-file");
    await choose(c.valid.receipt);
    await tabTo("document-file");
    await choose(c.valid.document);
    await tabTo("keys-server");
    await page.keyboard.press("ArrowDown");
    assert.equal(await page.evaluate(() => document.activeElement.id), "keys-paste");
    assert.ok(await page.isChecked("#keys-paste"));
    await tabTo("pasted-keys");
    await page.keyboard.insertText(plan.keys.live.join("\n"));
    await tabTo("tsa-server");
    await tabTo("pasted-tsa");
    await tabTo("verify");
    await page.keyboard.press("Enter");
    await page.waitForSelector("#result[data-valid]:not([hidden])");
    const r = await result(page);
    assert.ok(r.valid, r.verdict);
    assert.equal(r.focused, "verdict-title");
    assert.deepEqual(order.filter((id) => id), ["receipt-file", "document-file", "keys-server", "pasted-keys", "tsa-server", "pasted-tsa", "verify"]);
    const labelled = await page.evaluate(() =>
      [...document.querySelectorAll("input, textarea, progress")].every((e) => e.labels?.length || e.getAttribute("aria-label")),
    );
    assert.ok(labelled, "every control has a label");
    assert.equal(await page.getAttribute("#verdict", "aria-live"), "polite");
    await shot(page, "keyboard");
    await page.close();
  });

  await step("a phone's screen", async () => {
    const page = await newPage(served, { width: 390, height: 844 });
    const r = await verify(page, c.valid);
    assert.ok(r.valid, r.verdict);
    const fits = await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth);
    assert.ok(fits, "no sideways scrolling at 390 px");
    assert.match(await page.getAttribute('meta[name="viewport"]', "content"), /width=device-width/);
    await page.screenshot({ path: join(plan.screenshots, "phone.png"), fullPage: false });
    await shot(page, "phone-full");
    await page.close();
  });

  await step("opened straight from disk, keys pasted", async () => {
    const page = await newPage(pathToFileURL(plan.page_file).href);
    assert.ok(await page.isDisabled("#keys-server"), "no server to ask from a file");
    assert.match(await page.textContent("#server-keys-status"), /opened from a file/);
    const r = await verify(page, { ...c.valid, keys: plan.keys.live });
    assert.ok(r.valid, r.verdict);
    const r2 = await verify(page, { ...c.changed, keys: plan.keys.live });
    assert.deepEqual(failed(r2), ["document"]);
    await shot(page, "from-disk");
    await page.close();
  });

  await step("anchors: local, RFC 3161 without its CA, and EVM with a block explorer link", async () => {
    const page = await newPage(pathToFileURL(plan.explorer_page_file).href);
    assert.ok(await page.isDisabled("#tsa-server"), "no server to ask for its TSA CA from a file");
    const r = await verify(page, { ...c.anchored, keys: c.anchored.keys, ca: "none" });
    assert.ok(r.valid, r.verdict);
    assert.match(r.verdict, /^✓ Valid as far as checked/);
    const kinds = r.checks.filter(([n]) => n.startsWith("anchor"));
    assert.deepEqual(kinds, [["anchor 1 (local)", "ok"], ["anchor 2 (rfc3161)", "not checked"], ["anchor 3 (evm)", "not checked"]]);
    assert.deepEqual(r.unchecked, [
      "anchor 2 (rfc3161): no time-stamp authority's certificate was given",
      "anchor 3 (evm): its chain is not asked in a browser",
    ]);
    const tsa = await page.textContent('#anchors li[data-anchor="rfc3161"]');
    assert.match(tsa, /Claims, not checked/, "a token no CA vouches for is a claim, never evidence");
    assert.match(tsa, /CN=notar test TSA/);
    assert.match(tsa, /\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z/);
    assert.equal(await page.getAttribute('#checks li[data-check="anchor 2 (rfc3161)"]', "data-status"), "not checked");
    const href = await page.getAttribute('#anchors li[data-anchor="evm"] a', "href");
    assert.equal(href, `${plan.explorer}/tx/${c.anchored.tx_hash}`);
    assert.match(r.verdict, /An anchor that was not checked proves nothing here/);
    await shot(page, "anchors");
    await page.close();
  });

  await step("anchors: the RFC 3161 token checked with the CA pasted, and with a wrong one", async () => {
    const page = await newPage(pathToFileURL(plan.explorer_page_file).href);
    const r = await verify(page, { ...c.anchored, keys: c.anchored.keys, ca: plan.server_tsa_ca });
    assert.ok(r.valid, r.verdict);
    assert.deepEqual(r.checks.find(([n]) => n === "anchor 2 (rfc3161)"), ["anchor 2 (rfc3161)", "ok"]);
    const tsa = await page.textContent('#anchors li[data-anchor="rfc3161"]');
    assert.doesNotMatch(tsa, /Claims, not checked/);
    assert.match(tsa, /time-stamped at .* by CN=notar test TSA/);
    assert.match(await page.textContent('#checks li[data-check="anchor 2 (rfc3161)"]'), /independent evidence/);
    await shot(page, "anchors-tsa-checked");
    const wrong = await verify(page, { ...c.anchored, keys: c.anchored.keys, ca: c.wrong_ca });
    assert.ok(!wrong.valid, wrong.verdict);
    assert.deepEqual(failed(wrong), ["anchor 2 (rfc3161)"]);
    assert.match(await page.textContent("#verdict-detail"), /not trusted for time-stamping/);
    await page.fill("#pasted-tsa", "-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----");
    await page.click("#verify");
    assert.equal(await page.evaluate(() => document.activeElement.id), "pasted-tsa", "a damaged CA is named, not used");
    assert.match(await page.textContent("#pasted-tsa-status"), /not a certificate/);
    await page.close();
  });

  await step("tokens the server got from the test TSA: sound, signature flipped, untrusted TSA; with and without the CA", async () => {
    const page = await newPage(served);
    const NAME = "anchor 2 (rfc3161)";
    const status = (r) => r.checks.find(([n]) => n === NAME)?.[1];
    const box = () => page.textContent('#anchors li[data-anchor="rfc3161"]');
    const meaningOf = () => page.textContent(`#checks li[data-check="${NAME}"] .meaning`);
    const expect = {
      // case: [status with the server's CA, a detail it must say]
      stamped_valid: ["ok", /^time-stamped at \S+ by CN=notar test TSA/],
      stamped_tampered: ["failed", /signature does not verify/],
      stamped_untrusted: ["failed", /not trusted for time-stamping/],
    };
    for (const [name, [withCa, detail]] of Object.entries(expect)) {
      const r = await verify(page, { ...c[name], ca: "server" });
      assert.equal(status(r), withCa, `${name} with the server's CA: ${r.verdict}`);
      assert.equal(r.valid, withCa === "ok", `${name}: ${r.verdict}`);
      assert.match(await page.textContent(`#checks li[data-check="${NAME}"] .detail`), detail, name);
      if (withCa === "ok") {
        assert.match(await meaningOf(), /independent evidence/, name);
        assert.doesNotMatch(await box(), /Claims, not checked/, name);
      } else {
        assert.doesNotMatch(await meaningOf(), /independent evidence/, name);
        await shot(page, `tsa-${name}-failed`);
      }
      const bare = await verify(page, { ...c[name], ca: "none" });
      assert.equal(status(bare), "not checked", `${name} without a CA is never ok, never failed on its word`);
      assert.ok(bare.valid && /^✓ Valid as far as checked/.test(bare.verdict), `${name}: ${bare.verdict}`);
      assert.ok(bare.unchecked.includes(`${NAME}: no time-stamp authority's certificate was given`), bare.unchecked.join("; "));
      assert.match(await box(), /Claims, not checked/, `${name}: the TSA's name and time are claims`);
      assert.match(await box(), /CN=(notar test TSA|rogue TSA)/, name);
      assert.doesNotMatch(await meaningOf(), /independent evidence/, name);
    }
    await page.close();
  });

  /** Switches the page to print or screen media and waits for the page's own switch (its
   *  matchMedia change handler turns html.paper on or off after the media changed, not at once). */
  async function media(page, kind) {
    await page.emulateMedia({ media: kind });
    await page.waitForFunction((on) => document.documentElement.classList.contains("paper") === on, kind === "print");
  }

  await step("the print view is the evidence report", async () => {
    const page = await newPage(served);
    assert.match(await page.textContent("#server-tsa"), /CN=notar test CA/);
    const r = await verify(page, { ...c.anchored, keys: c.anchored.keys, ca: "server" });
    assert.ok(r.valid, r.verdict);
    assert.deepEqual(r.checks.find(([n]) => n === "anchor 2 (rfc3161)"), ["anchor 2 (rfc3161)", "ok"], "with the server's CA");
    assert.ok(await page.isVisible("#print"), "the button is on the screen");
    assert.ok(!(await page.isVisible("#print-head")), "the report's head is for paper only");
    const marks = await page.evaluate(() => [...document.querySelectorAll("#timeline circle")].map((n) => n.getAttribute("class")));
    assert.deepEqual(marks, ["tl-mark tl-ok", "tl-mark tl-ok", "tl-mark tl-ok", "tl-mark tl-ok", "tl-mark tl-skip"]);
    await media(page, "print");
    for (const hidden of ["#form", "#about", "#print", "header"]) assert.ok(!(await page.isVisible(hidden)), `${hidden} is not printed`);
    for (const shown of ["#print-head", "#verdict", "#timeline", "#checks", "#facts", "#print-keys"]) assert.ok(await page.isVisible(shown), `${shown} is printed`);
    assert.match(await page.textContent("#print-meta"), /^Checked on .* in a web browser, with notar's web verifier at http/);
    assert.match(await page.textContent("#print-keys"), /time-stamp authority's CA \(published by this server\): CN=notar test CA/);
    await shot(page, "print-view");
    await page.pdf({ path: plan.printed, format: "A4", printBackground: true });
    assert.equal(await page.getAttribute("#app", "data-paper-zoom"), "1.00", "it fits as it is");
    await media(page, "screen");
    assert.ok(await page.isVisible("#form") && !(await page.isVisible("#print-head")), "back on the screen");
    await verify(page, { ...c.anchored, keys: c.anchored.keys, ca: "none" });
    await media(page, "print");
    const claimed = page.locator('#anchors li[data-anchor="rfc3161"]');
    assert.ok(await claimed.isVisible(), "the token is on the paper");
    assert.match(await claimed.textContent(), /Claims, not checked/, "without a CA, as a claim");
    assert.equal(await page.getAttribute('#checks li[data-check="anchor 2 (rfc3161)"]', "data-status"), "not checked");
    assert.match(await page.textContent("#timeline"), /\(claimed\)/, "its time on the timeline is claimed");
    assert.match(await page.textContent("#print-keys"), /no time-stamp authority's CA/);
    await media(page, "screen");
    const many = await verify(page, { ...c.sixteen, ca: "server" });
    assert.ok(many.valid && many.checks.length === 7 + 16, many.verdict);
    await media(page, "print");
    const zoom = Number(await page.getAttribute("#app", "data-paper-zoom"));
    assert.ok(zoom < 0.9 && zoom > 0.4, `sixteen anchors are zoomed down to one sheet: ${zoom}`);
    await page.pdf({ path: plan.printed_many, format: "A4", printBackground: true });
    await page.close();
  });

  await step("anchors of an aggregate of shards' checkpoints", async () => {
    const page = await newPage(pathToFileURL(plan.explorer_page_file).href);
    const r = await verify(page, c.aggregated);
    assert.ok(r.valid, r.verdict);
    assert.deepEqual(r.checks.find(([n]) => n === "anchor 1 (local)"), ["anchor 1 (local)", "ok"]);
    const local = await page.textContent('#anchors li[data-anchor="local"]');
    assert.match(local, /for an aggregate of 3 checkpoints/);
    assert.match(local, /leaf 0 of 3 checkpoints/);
    await shot(page, "aggregate");
    await page.close();
  });

  await step("a shard's receipt anchored by shard 0's committer in an aggregate", async () => {
    const page = await newPage(served);
    const r = await verify(page, { ...c.aggregated_live, ca: "server" });
    assert.ok(r.valid, r.verdict);
    assert.deepEqual(failed(r), []);
    assert.deepEqual(unchecked(r), []);
    const local = await page.textContent('#anchors li[data-anchor="local"]');
    assert.match(local, /for an aggregate of 3 checkpoints/);
    assert.match(local, /leaf 2 of 3 checkpoints/);
    const stamp = await page.textContent('#anchors li[data-anchor="rfc3161"]');
    assert.match(stamp, /time-stamped for an aggregate of 3 checkpoints/);
    await shot(page, "aggregate-of-shards");
    await page.close();
  });

  await step("the corpus, receipt by receipt", async () => {
    const page = await newPage(served);
    const out = {};
    for (const item of plan.corpus) {
      const ca = item.tsa_ca === plan.server_tsa_ca ? "server" : item.tsa_ca;
      const r = await verify(page, { receipt: item.receipt, document: item.document, keys: plan.keys[item.keys], ca });
      out[item.id] = { valid: r.valid, checks: r.checks };
      if (item.id.startsWith("duplicate-name")) {
        assert.deepEqual(failed(r), ["format"], item.id);
        const detail = await page.textContent("#verdict-detail");
        assert.match(detail, /the member '(index|digest|type)' appears twice in one object/, item.id);
      }
      if (r.valid) assert.match(r.verdict, unchecked(r).length ? /^✓ Valid as far as checked/ : /^✓ Valid: every check holds/, item.id);
    }
    writeFileSync(plan.results, JSON.stringify(out, null, 1));
    log(`${plan.corpus.length} receipts: ${Object.values(out).filter((v) => v.valid).length} valid`);
    await page.close();
  });

  await step("still works after the server is gone", async () => {
    const page = await newPage(served);
    assert.match(await page.textContent("#server-keys"), /log key/);
    process.kill(plan.server_pid, "SIGTERM");
    for (let k = 0; ; k++) {
      try {
        await fetch(`${plan.url}/healthz`);
      } catch {
        break;
      }
      assert.ok(k < 300, "the server did not stop");
      await new Promise((done) => setTimeout(done, 100));
    }
    const r = await verify(page, c.valid);
    assert.ok(r.valid, r.verdict);
    const r2 = await verify(page, c.changed);
    assert.deepEqual(failed(r2), ["document"]);
    await shot(page, "server-gone");
    await page.close();
  });

  await step("no request carried a document's bytes", async () => {
    const pageUrl = new URL(served);
    for (const r of requests) {
      const url = new URL(r.url);
      if (url.protocol === "file:") continue;
      assert.equal(r.method, "GET", `${r.method} ${r.url}`);
      assert.equal(r.body, null, `a request with a body: ${r.url}`);
      assert.equal(url.origin, pageUrl.origin, `a request elsewhere: ${r.url}`);
      assert.ok(["/verify", "/v1/keys", "/v1/tsa-ca"].includes(url.pathname), `an unexpected request: ${r.url}`);
      const all = r.url + JSON.stringify(r.headers);
      for (const marker of plan.markers) assert.ok(!all.includes(marker), `a document's bytes in ${r.url}`);
    }
    const fromDisk = requests.filter((r) => r.url.startsWith("file:"));
    assert.ok(fromDisk.every((r) => r.url === pathToFileURL(plan.page_file).href || r.url === pathToFileURL(plan.explorer_page_file).href), "the page from disk loads nothing else");
    log(`${requests.length} requests, all GET /verify, /v1/keys or /v1/tsa-ca (or the page file)`);
  });

  assert.deepEqual(errors, [], "no script error on any page");
  log("all cases passed");
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
