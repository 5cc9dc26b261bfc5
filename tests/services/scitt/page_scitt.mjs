// Drives the web verifier (GET /verify) in Debian's Chromium with playwright-core on SCITT files:
//
//   node tests/services/scitt/page_scitt.mjs PLAN.json
//
// PLAN.json is {url, dir}; dir holds embedded.cose (a transparent statement), statement.cose and
// receipt.cose (the same, apart) and tampered.cose. Each case is verified with the keys the server
// publishes; the page's verdict on each goes to dir/results.json for test_scitt_page.py to assert.
import { readFileSync, writeFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

const plan = JSON.parse(readFileSync(process.argv[2], "utf8"));
const profile = mkdtempSync(join(tmpdir(), "notar-chromium-scitt-"));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: "/usr/bin/chromium",
  headless: true,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
context.setDefaultTimeout(60_000);
const errors = [];
const results = {};
try {
  const page = await context.newPage();
  page.on("pageerror", (e) => errors.push(e.message));
  await page.goto(plan.url);
  await page.waitForSelector("#app[data-ready=true]");
  const cases = { embedded: ["embedded.cose", null], apart: ["receipt.cose", "statement.cose"], tampered: ["tampered.cose", null] };
  for (const [name, [first, second]] of Object.entries(cases)) {
    const runs = Number((await page.getAttribute("#app", "data-runs")) || "0");
    await page.setInputFiles("#receipt-file", join(plan.dir, first));
    await page.setInputFiles("#document-file", second ? join(plan.dir, second) : []);
    await page.click("#verify");
    await page.waitForFunction((n) => Number(document.getElementById("app").dataset.runs || "0") > n, runs);
    results[name] = await page.evaluate(() => ({
      valid: document.getElementById("result").dataset.valid,
      text: document.getElementById("verdict-text").textContent,
      checks: Object.fromEntries([...document.querySelectorAll("#checks li")].map((li) => [li.dataset.check, li.dataset.status])),
      failed: [...document.querySelectorAll("#checks li[data-status=failed]")].map((li) => li.dataset.check),
    }));
  }
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
writeFileSync(join(plan.dir, "results.json"), JSON.stringify(results));
if (errors.length) {
  console.error("page errors:", errors);
  process.exit(1);
}
