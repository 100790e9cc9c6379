// Launching Debian's Chromium headless with the flags measured in ../shared/TOOLCHAIN.md.
import { chromium } from "playwright-core";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

// `serviceWorkers: "block"` lets page.route() see every request (a service worker would answer
// some of them before the route does). Every page gets the tests' hooks (hooks/page.js:
// `window.histoseg`) unless `hooks` is false: the page as built has none.
export async function launch({ webgpu, serviceWorkers = "allow", hooks = true }) {
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), "histoseg-chromium-"));
  const args = [
    "--no-sandbox", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-quic",
  ];
  if (webgpu) args.push("--enable-unsafe-webgpu", "--use-webgpu-adapter=swiftshader");
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: "/usr/bin/chromium",
    headless: true,
    serviceWorkers,
    args,
  });
  // the 2-core CI machine runs SwiftShader and the page's workers beside the browser: actions get
  // more than Playwright's 30 s
  context.setDefaultTimeout(120_000);
  if (hooks) await context.addInitScript({ path: path.join(import.meta.dirname, "hooks/page.js") });
  return { context, close: async () => { await context.close(); fs.rmSync(userDataDir, { recursive: true, force: true }); } };
}

export const DATA = process.env.HISTOSEG_DATA || path.resolve(import.meta.dirname, "../../../shared/data");

/** Largest value of a /proc status field (`VmRSS` now, `VmHWM` peak), in MB, among Chromium's
 * processes of one kind (`renderer`, `gpu-process`). Linux only; one browser runs at a time. */
export function chromiumMemoryMb(type, field) {
  let best = 0;
  for (const pid of fs.readdirSync("/proc").filter((p) => /^\d+$/.test(p))) {
    try {
      const cmd = fs.readFileSync(`/proc/${pid}/cmdline`, "utf8");
      if (!cmd.includes("chromium") || !cmd.includes(`--type=${type}`)) continue;
      const m = new RegExp(`${field}:\\s+(\\d+)`).exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"));
      if (m) best = Math.max(best, Number(m[1]) / 1024);
    } catch { /* the process exited */ }
  }
  return best;
}

/** A new page of `site` at `query`, waited on until the page is ready (model loaded); page
 * errors and CSP violations are collected in `problems`. */
export async function readyPage(context, siteUrl, query) {
  const page = await context.newPage();
  await page.setViewportSize({ width: 1280, height: 800 });
  const problems = [];
  page.on("pageerror", (e) => problems.push(`pageerror: ${e}`));
  page.on("console", (m) => { if (/Content Security Policy|Refused to/.test(m.text())) problems.push(m.text()); });
  await page.goto(siteUrl + query);
  await page.waitForFunction(() => ["ready", "error"].includes(window.histoseg?.status), null, { timeout: 180_000 });
  const st = await page.evaluate(() => ({ status: window.histoseg.status, errors: window.histoseg.errors }));
  if (st.status !== "ready") throw new Error(`page not ready: ${st.errors.join("; ")} ${problems.join("\n")}`);
  return { page, problems };
}

/** Waits for the current segmentation to end and returns its status, errors and result. */
export async function segmentationEnd(page, timeout = 300_000) {
  await page.waitForFunction(() => ["done", "error", "cancelled"].includes(window.histoseg.status), null, { timeout });
  return page.evaluate(() => ({ status: window.histoseg.status, errors: window.histoseg.errors, result: window.histoseg.lastResult }));
}

/**
 * Clicks an export `button` and returns the file the page downloads: `{ name, bytes }`. An export
 * the page reports as failed (an error in the tests' hooks) fails at once with the page's words.
 */
export async function download(page, button, timeout = 300_000) {
  const before = await page.evaluate(() => window.histoseg.errors.length);
  // each promise settles without an unhandled rejection, whichever comes first. The error watch
  // goes on polling after the download (it cannot be cancelled), through a later reload too, when
  // the new document has no hooks yet: it must not throw there (a page error the tests count)
  const saved = page.waitForEvent("download", { timeout }).then((d) => ({ d }), (e) => ({ why: e.message }));
  const failed = page.waitForFunction((n) => (window.histoseg?.errors.length ?? 0) > n, before, { timeout })
    .then(() => page.evaluate((n) => ({ why: window.histoseg.errors.slice(n).join("; ") }), before), () => new Promise(() => {}));
  const [got] = await Promise.all([Promise.race([saved, failed]), page.click(button)]);
  if (!got.d) throw new Error(`${button}: ${got.why}`);
  const d = got.d;
  const file = path.join(os.tmpdir(), `histoseg-${process.pid}-${d.suggestedFilename()}`);
  await d.saveAs(file);
  const bytes = fs.readFileSync(file);
  fs.rmSync(file, { force: true });
  return { name: d.suggestedFilename(), bytes };
}

/** Centres the view on a level-0 point at `scale` CSS px per image px, as panning and zooming would. */
export async function viewAt(page, cx, cy, scale) {
  await page.evaluate(({ cx, cy, scale }) => { const v = window.histoseg.viewer(); v.view = { cx, cy, scale }; v.changed(); }, { cx, cy, scale });
}

/** Runs `script` at the start of every histoseg worker, before its wasm module loads, as
 * `addInitScript` does for pages (which never reach workers): the route serves worker.js with the
 * script in front. Use with `serviceWorkers: "block"`, so that the route sees the request. */
export async function addWorkerInitScript(context, script) {
  await context.route(/\/worker\.js$/, async (route) => {
    const resp = await route.fetch();
    await route.fulfill({ response: resp, body: `(${script})();\n${await resp.text()}` });
  });
}

/** Evaluates `fn` in each of the page's workers; returns their answers. */
export async function inWorkers(page, fn) {
  return Promise.all(page.workers().map((w) => w.evaluate(fn)));
}
