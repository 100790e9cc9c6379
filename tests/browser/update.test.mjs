// A new build never mixes with the old one (sw.js): the service worker serves one version's files
// from a cache named by that version; a new build's worker fills its own cache beside it and
// waits until the page's "Reload with it" is clicked. The test serves a copy of dist/, visits it,
// then "deploys" a new build into the copy (histoseg.js and its wasm both changed, the version
// stamped by the build's own hook script) while the page is open.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { serveDir } from "./server.mjs";
import { launch, readyPage, segmentationEnd } from "./browser.mjs";

const ROOT = path.resolve(import.meta.dirname, "../..");
const DIST = path.join(ROOT, "dist");
const MARK = "// a later build";
let dir, site;

before(async () => {
  assert.ok(fs.existsSync(path.join(DIST, "index.html")), "build the viewer first (cargo xtask test does)");
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "histoseg-deploy-"));
  fs.cpSync(DIST, dir, { recursive: true });
  site = await serveDir(dir);
});
after(async () => {
  site?.server.close();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

const versionIn = (d) => fs.readFileSync(path.join(d, "sw.js"), "utf8").match(/^const VERSION = "([^"]*)";/m)[1];

// What the page is served now (through the service worker), and what each cache holds.
const served = (page) => page.evaluate(async () => {
  const look = async (get) => {
    const js = await (await get("histoseg.js")).text();
    return { laterJs: js.includes("// a later build"), wasmBytes: (await (await get("histoseg_bg.wasm")).arrayBuffer()).byteLength };
  };
  const caches_ = {};
  for (const k of await caches.keys()) {
    const c = await caches.open(k);
    caches_[k] = await look(async (p) => c.match(new URL(p, location.href).href));
  }
  return { page: await look((p) => fetch(p)), caches: caches_ };
});

async function segmentGrey(page) {
  await page.setInputFiles("#file", path.join(ROOT, "tests/bad_inputs/grey.png"));
  await page.waitForFunction(() => window.histoseg.image?.name === "grey.png", null, { timeout: 60_000 });
  await page.click("#segment-all");
  const seg = await segmentationEnd(page);
  assert.equal(seg.status, "done", seg.errors.join("; "));
}

test("a new build waits in its own cache and is taken whole on the user's click", { timeout: 600_000 }, async () => {
  const b = await launch({ webgpu: false });
  try {
    const v1 = versionIn(dir);
    assert.match(v1, /^[0-9a-f]{16}$/, "the build stamped the service worker's version");
    const { page, problems } = await readyPage(b.context, site.url, "?backend=cpu&model=glands");
    await page.evaluate(async () => { await navigator.serviceWorker.ready; });
    await page.reload();
    await page.waitForFunction(() => window.histoseg?.status === "ready" && navigator.serviceWorker.controller, null, { timeout: 120_000 });
    const first = await served(page);
    const oldWasm = fs.statSync(path.join(dir, "histoseg_bg.wasm")).size;
    assert.deepEqual(first, { page: { laterJs: false, wasmBytes: oldWasm }, caches: { [`histoseg-${v1}`]: { laterJs: false, wasmBytes: oldWasm } } });

    // deploy a later build: histoseg.js and its wasm (a custom section appended) both change
    fs.appendFileSync(path.join(dir, "histoseg.js"), `\n${MARK}\n`);
    const name = Buffer.from("later");
    fs.appendFileSync(path.join(dir, "histoseg_bg.wasm"), Buffer.concat([Buffer.from([0, name.length + 1, name.length]), name]));
    const newWasm = oldWasm + name.length + 3;
    execFileSync("node", [path.join(ROOT, "scripts/stamp_version.mjs"), dir]);
    const v2 = versionIn(dir);
    assert.notEqual(v2, v1);

    // the page is reloaded: the new build installs beside the old one, and the page still gets
    // the old build's files, all of them, and works
    await page.reload();
    await page.waitForFunction(() => window.histoseg?.status === "ready", null, { timeout: 120_000 });
    await page.evaluate(async () => { await (await navigator.serviceWorker.getRegistration()).update().catch(() => {}); });
    await page.waitForFunction(() => window.histoseg.updateReady, null, { timeout: 120_000 });
    assert.equal(await page.isVisible("#update"), true, "the page says an update is ready");
    const waiting = await served(page);
    assert.deepEqual(waiting, {
      page: { laterJs: false, wasmBytes: oldWasm },
      caches: { [`histoseg-${v1}`]: { laterJs: false, wasmBytes: oldWasm }, [`histoseg-${v2}`]: { laterJs: true, wasmBytes: newWasm } },
    });
    await segmentGrey(page);

    // taken on the click: the page reloads with the new build whole, and the old cache is gone
    await Promise.all([page.waitForNavigation({ timeout: 120_000 }), page.click("#update-now")]);
    await page.waitForFunction(() => window.histoseg?.status === "ready", null, { timeout: 120_000 });
    const updated = await served(page);
    assert.deepEqual(updated, { page: { laterJs: true, wasmBytes: newWasm }, caches: { [`histoseg-${v2}`]: { laterJs: true, wasmBytes: newWasm } } });
    assert.equal(await page.isVisible("#update"), false);
    await segmentGrey(page);
    console.log(`version ${v1} served whole while ${v2} waited; after the click ${v2} whole (wasm ${oldWasm} -> ${newWasm} bytes), old cache deleted`);
    assert.deepEqual(problems, []);
  } finally {
    await b.close();
  }
});
