// Memory stays bounded across repeated work (issue 6, faults): the page segments the nuclei
// sample 20 times in a row on the CPU backend and, after each run, the wasm heap (the linear
// memory's size, which only ever grows) and the renderer's resident memory are recorded. A result,
// job or tile buffer that is not freed grows the wasm heap run after run; the test asserts the
// heap does not grow over the last ten runs, and prints every figure. (The allocator may grow the
// heap once in the first runs, by a few MB, as its free space fragments: that is no leak.)
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { serveDir } from "./server.mjs";
import { launch, chromiumMemoryMb } from "./browser.mjs";

const ROOT = path.resolve(import.meta.dirname, "../..");
const DIST = path.join(ROOT, "dist");
const RUNS = 20;
let site;

before(async () => {
  assert.ok(fs.existsSync(path.join(DIST, "index.html")), "build the viewer first (cargo xtask test does)");
  site = await serveDir(DIST);
});
after(async () => { site?.server.close(); });

test(`memory stays bounded across ${RUNS} segmentations of the same image`, { timeout: 900_000 }, async () => {
  const b = await launch({ webgpu: false });
  try {
    const page = await b.context.newPage();
    await page.goto(site.url + "?backend=cpu&model=nuclei");
    await page.waitForFunction(() => ["ready", "error"].includes(window.histoseg?.status), null, { timeout: 180_000 });
    await page.click("#sample-nuclei");
    await page.waitForFunction(() => window.histoseg.status === "opened", null, { timeout: 120_000 });
    // a 256x256 region in the middle keeps each run to a few tiles
    await page.evaluate(() => { const v = window.histoseg.viewer(); v.view.cx = 500; v.view.cy = 500; v.view.scale = 2.5; v.changed(); });
    // the compute worker's heap: it holds the jobs and results
    const wasmMb = () => page.evaluate(async () => (await window.histoseg.wasmMemory()).compute / 2 ** 20);
    const rows = [];
    for (let i = 1; i <= RUNS; i++) {
      await page.click("#segment-view");
      await page.waitForFunction(() => ["done", "error"].includes(window.histoseg.status), null, { timeout: 300_000 });
      const st = await page.evaluate(() => ({ status: window.histoseg.status, errors: window.histoseg.errors, r: window.histoseg.lastResult }));
      assert.equal(st.status, "done", `run ${i} failed: ${st.errors.join("; ")}`);
      rows.push({ run: i, tiles: st.r.tiles, wasm: await wasmMb(), rss: chromiumMemoryMb("renderer", "VmRSS") });
    }
    console.log(`run  tiles  wasm heap MB  renderer RSS MB`);
    for (const r of rows) console.log(`${String(r.run).padStart(3)}  ${String(r.tiles).padStart(5)}  ${r.wasm.toFixed(1).padStart(12)}  ${r.rss.toFixed(0).padStart(15)}`);
    const settled = rows[9].wasm; // half way
    const last = rows[RUNS - 1].wasm;
    console.log(`wasm heap: ${rows[0].wasm.toFixed(1)} MB after run 1, ${rows[2].wasm.toFixed(1)} MB after run 3, ${settled.toFixed(1)} MB after run 10, ${last.toFixed(1)} MB after run ${RUNS}; ` +
      `renderer RSS ${rows[2].rss.toFixed(0)} -> ${rows[RUNS - 1].rss.toFixed(0)} MB`);
    assert.ok(rows[0].tiles > 0);
    // measured: no growth over the last ten runs. One leaked result (its labels alone are
    // ~0.15 MB here) per run would add 1.5 MB in ten runs.
    assert.ok(last - settled <= 1, `the wasm heap grew by ${(last - settled).toFixed(1)} MB from run 10 to run ${RUNS}`);
  } finally {
    await b.close();
  }
});
