// A whole slide larger than 4 GB in the page (CPU backend): written by
// `examples/make_big_slide.rs` (an SVS-like BigTIFF, 100,000 px a side, real H&E JPEG tiles, the
// bottom half of level 0 stored past byte 4.5 GB; sparse on disk). The workers read the File
// through Blob.slice, so it opens by reading its directories; a region far into it (its tiles lie
// past 4 GB) segments; the renderer's memory stays far below the file's size. Prints the time to
// open, to the first screen, and the memory.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { serveDir } from "./server.mjs";
import { launch, readyPage, segmentationEnd, viewAt, chromiumMemoryMb } from "./browser.mjs";

const ROOT = path.resolve(import.meta.dirname, "../..");
const DIST = path.join(ROOT, "dist");
const MAKER = path.join(ROOT, "target/release/examples/make_big_slide");
let site;

before(async () => {
  assert.ok(fs.existsSync(path.join(DIST, "index.html")), "build the viewer first (cargo xtask test does)");
  assert.ok(fs.existsSync(MAKER), "build the example first (cargo test --release builds it)");
  site = await serveDir(DIST);
});
after(async () => { site?.server.close(); });

test("a 4.5 GB slide opens at once, shows, and segments a region past 4 GB", { timeout: 600_000 }, async () => {
  const file = path.join(os.tmpdir(), `histoseg-${process.pid}-big.svs`);
  console.log(execFileSync(MAKER, [file], { encoding: "utf8" }).trim());
  const size = fs.statSync(file).size;
  assert.ok(size > 4.5e9, `the file is ${size} bytes`);
  const b = await launch({ webgpu: false });
  try {
    const { page, problems } = await readyPage(b.context, site.url, "?backend=cpu&model=glands");
    const t0 = Date.now();
    await page.setInputFiles("#file", file);
    await page.waitForFunction(() => window.histoseg.status === "opened" || window.histoseg.errors.length, null, { timeout: 120_000 });
    const openS = (Date.now() - t0) / 1000;
    const image = await page.evaluate(() => window.histoseg.image);
    assert.ok(image, `not opened: ${await page.evaluate(() => window.histoseg.errors.join("; "))}`);
    assert.deepEqual([image.width, image.height, image.format, image.levels, image.umPerPx], [100_000, 100_000, "Aperio SVS", 4, 0.5]);
    // the first screen: the overview (backdrop) drawn from the coarsest level
    await page.waitForFunction(() => window.histoseg.viewer().backdrop !== null, null, { timeout: 120_000 });
    const firstScreenS = (Date.now() - t0) / 1000;
    assert.ok(image.bytesRead < 5e6, `opening read ${image.bytesRead} bytes`);

    // far into the slide: level 0's bottom half is stored past 4.5 GB
    await viewAt(page, 70_000, 90_000, 0.5);
    await page.waitForFunction(() => window.histoseg.viewer().tiles.size > 0, null, { timeout: 120_000 });
    const t1 = Date.now();
    await page.click("#segment-view");
    const seg = await segmentationEnd(page, 480_000);
    assert.equal(seg.status, "done", seg.errors.join("; "));
    assert.ok(seg.result.y > 80_000 && seg.result.width > 500, `region ${JSON.stringify(seg.result)}`);
    const tissue = seg.result.classAreas.slice(1).reduce((a, c) => a + c, 0);
    assert.ok(tissue > 0, "glands are found in the real H&E tiles");
    const wasm = await page.evaluate(async () => window.histoseg.wasmMemory());
    const peak = chromiumMemoryMb("renderer", "VmHWM");
    console.log(`${(size / 1e9).toFixed(2)} GB slide: opened in ${openS.toFixed(1)} s (${(image.bytesRead / 1e6).toFixed(2)} MB read), first screen at ${firstScreenS.toFixed(1)} s; ` +
      `a ${seg.result.width}x${seg.result.height} region at (${seg.result.x}, ${seg.result.y}) segmented in ${((Date.now() - t1) / 1000).toFixed(1)} s (${seg.result.tiles} tiles); ` +
      `wasm heaps: compute ${(wasm.compute / 2 ** 20).toFixed(0)} MB, display ${(wasm.display / 2 ** 20).toFixed(0)} MB; renderer peak ${peak.toFixed(0)} MB`);
    // the file is never held: memory is a small fraction of its size
    assert.ok(wasm.compute + wasm.display < 1e9, "the workers' heaps stay under 1 GB");
    assert.deepEqual(problems, []);
  } finally {
    await b.close();
    fs.rmSync(file, { force: true });
  }
});
