// The whole real SVS sample segmented in the page on the CPU ("Whole image"): the worker streams
// it in bands with its tissue found on a thumbnail (histoseg::whole_slide), as the command line's
// `segment --stream` does. The overlay grows band by band during the run; the labels are the
// CLI's, and the GeoJSON has one polygon per object, glands cut by the borders between bands of
// tiles included. A slide larger than the page holds at level 0 (12000x12000, glass around the
// sample) streams whole too: its labels are kept as a pyramid of tiles, drawn finer when zoomed
// in, exported (the label mask at full resolution, the overlay picture at the finest level the
// page draws whole), and kept across a reload.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { serveDir } from "./server.mjs";
import { launch, readyPage, segmentationEnd, viewAt, download, DATA } from "./browser.mjs";
import { readGrayPng } from "./png.mjs";

const ROOT = path.resolve(import.meta.dirname, "../..");
const DIST = path.join(ROOT, "dist");
const SVS = path.join(DATA, "samples/cmu-small-region.svs");
const CLI = path.join(ROOT, "target/release/histoseg");
const MAKER = path.join(ROOT, "target/release/examples/make_big_slide");
let site;

before(async () => {
  assert.ok(fs.existsSync(path.join(DIST, "index.html")), "build the viewer first (cargo xtask test does)");
  site = await serveDir(DIST);
});
after(async () => { site?.server.close(); });

// Top and bottom of a polygon's outer ring.
const yExtent = (f) => {
  const ys = f.geometry.coordinates[0].map((p) => p[1]);
  return [Math.min(...ys), Math.max(...ys)];
};

test("the whole SVS streamed in the page has the CLI's labels and one polygon per object", { timeout: 900_000 }, async () => {
  assert.ok(fs.existsSync(CLI), `the CLI is built by cargo test --release --features cli (${CLI})`);
  const out = fs.mkdtempSync(path.join(os.tmpdir(), "histoseg-whole-"));
  const said = execFileSync(CLI, ["segment", "--stream", "--model", path.join(ROOT, "models/glands.histoseg"), "--input", SVS, "--output", out], { encoding: "utf8" });
  const [, cliTiles, cliGlass] = said.match(/streaming 2220x2967 pixels in (\d+) tiles \((\d+) of glass skipped\)/);
  const native = readGrayPng(fs.readFileSync(path.join(out, "cmu-small-region.labels.png")));
  const nativeGj = JSON.parse(fs.readFileSync(path.join(out, "cmu-small-region.geojson"), "utf8"));

  const b = await launch({ webgpu: false });
  try {
    const { page } = await readyPage(b.context, site.url, "?backend=cpu&model=glands");
    await page.setInputFiles("#file", SVS);
    await page.waitForFunction(() => window.histoseg.status === "opened" || window.histoseg.errors.length, null, { timeout: 60_000 });
    const t0 = Date.now();
    await page.click("#segment-all");
    // the overlay grows band by band while the run goes on: final rows, drawn once no gland that
    // is still being labelled reaches them
    const overview = () => {
      const o = window.histoseg.viewer().overlay;
      const px = o.canvas.getContext("2d").getImageData(0, 0, o.canvas.width, o.canvas.height).data;
      let painted = 0;
      for (let i = 3; i < px.length; i += 4) if (px[i] > 0) painted++;
      return { status: window.histoseg.status, rows: window.histoseg.rowsDrawn, done: Number(document.getElementById("progress").value), painted, size: [o.width, o.height], preview: [o.canvas.width, o.canvas.height] };
    };
    await page.waitForFunction(() => window.histoseg.rowsDrawn > 0, null, { timeout: 600_000 });
    const first = await page.evaluate(overview);
    let during = first;
    while (during.painted === 0 && during.status === "segmenting") {
      await new Promise((r) => setTimeout(r, 200));
      during = await page.evaluate(overview);
    }
    assert.equal(first.status, "segmenting", "rows are drawn before the run ends");
    assert.equal(during.status, "segmenting", "glands are drawn before the run ends");
    // the overview: every 4th row and column of the slide, each pixel a 4x4 block
    assert.deepEqual(during.preview, [555, 742]);
    assert.deepEqual(during.size, [2220, 2968]);
    const st = await segmentationEnd(page, 800_000);
    assert.equal(st.status, "done", st.errors.join("; "));
    const r = st.result;
    assert.deepEqual([r.x, r.y, r.width, r.height], [0, 0, 2220, 2967]);
    assert.deepEqual([r.tiles, r.glassTiles], [Number(cliTiles), Number(cliGlass)], "the same tiles run and skipped as the CLI's");

    const mine = readGrayPng((await download(page, "#export-labels")).bytes);
    assert.deepEqual([mine.width, mine.height], [native.width, native.height]);
    let differ = 0;
    for (let i = 0; i < mine.data.length; i++) if (mine.data[i] !== native.data[i]) differ++;
    const gj = JSON.parse((await download(page, "#export-geojson")).bytes.toString("utf8"));
    // the model's grid (1 µm/px) has a row of tiles every 192 px, about 384 rows of the slide
    const borders = [1, 2, 3, 4, 5, 6, 7].map((k) => (k * 192 * 2967) / 1481);
    const across = gj.features.filter((f) => { const [y0, y1] = yExtent(f); return borders.some((y) => y0 < y && y < y1); }).length;
    console.log(`whole SVS in the page: ${r.tiles} tiles (${r.glassTiles} of glass skipped) with ${r.workers} CPU workers in ${((Date.now() - t0) / 1000).toFixed(0)} s; ` +
      `${differ} of ${mine.data.length} pixels differ from the CLI's streamed labels; ${gj.features.length} objects (CLI ${nativeGj.features.length}), ${across} across band borders`);
    const rowsDrawn = await page.evaluate(() => window.histoseg.rowsDrawn);
    console.log(`first rows drawn after ${first.done} of ${r.tiles} tiles (${first.rows} rows); first glands drawn after ${during.done} tiles (${during.rows} rows, ${during.painted} pixels painted on the ${during.preview.join("x")} overview); ${rowsDrawn} rows drawn in all before the result`);
    assert.ok(during.painted > 0, "the first rows show glands");
    assert.equal(rowsDrawn, 2967, "every row was drawn as it was labelled");
    assert.equal(differ, 0, "the page's labels are the CLI's");
    assert.equal(gj.features.length, nativeGj.features.length);
    assert.ok(gj.features.every((f) => f.geometry.type === "Polygon"));
    const area = gj.features.reduce((a, f) => a + f.properties.measurements["Area px^2"], 0);
    assert.equal(area, mine.data.filter((l) => l > 0).length, "the objects cover every labelled pixel once");
    assert.ok(across >= 3, "glands cut by band borders are one polygon each");
  } finally {
    await b.close();
    fs.rmSync(out, { recursive: true, force: true });
  }
});

test("a 12000x12000 slide streams whole in the page: labels as a pyramid, zoomed detail, exports, kept", { timeout: 900_000 }, async () => {
  assert.ok(fs.existsSync(CLI), `the CLI is built by cargo test --release --features cli (${CLI})`);
  assert.ok(fs.existsSync(MAKER), "build the example first (cargo test --release builds it)");
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "histoseg-glass-"));
  const slide = path.join(dir, "glass-12000.svs");
  console.log(execFileSync(MAKER, [slide, "--glass", "12000"], { encoding: "utf8" }).trim());
  const said = execFileSync(CLI, ["segment", "--stream", "--model", path.join(ROOT, "models/glands.histoseg"), "--input", slide, "--output", dir], { encoding: "utf8" });
  const [, cliTiles, cliGlass] = said.match(/streaming 12000x12000 pixels in (\d+) tiles \((\d+) of glass skipped\)/);
  const native = readGrayPng(fs.readFileSync(path.join(dir, "glass-12000.labels.png")));
  const nativeGj = JSON.parse(fs.readFileSync(path.join(dir, "glass-12000.geojson"), "utf8"));
  assert.ok(nativeGj.features.length > 0, "the CLI finds glands");

  const b = await launch({ webgpu: false });
  try {
    const { page, problems } = await readyPage(b.context, site.url, "?backend=cpu&model=glands");
    await page.setInputFiles("#file", slide);
    await page.waitForFunction(() => window.histoseg.status === "opened" || window.histoseg.errors.length, null, { timeout: 60_000 });
    const t0 = Date.now();
    await page.click("#segment-all");
    const st = await segmentationEnd(page, 800_000);
    assert.equal(st.status, "done", st.errors.join("; "));
    const r = st.result;
    assert.deepEqual([r.width, r.height, r.tiles, r.glassTiles], [12000, 12000, Number(cliTiles), Number(cliGlass)]);
    const memory = await page.evaluate(() => window.histoseg.wasmMemory());

    // the label mask at full resolution (144 MP, written a band at a time in the worker): the
    // CLI's mask, and the same file byte for byte (one PNG stream writer, src/png_stream.rs)
    const minePng = (await download(page, "#export-labels")).bytes;
    const mine = readGrayPng(minePng);
    assert.deepEqual([mine.width, mine.height], [12000, 12000]);
    let differ = 0, foreground = 0;
    for (let i = 0; i < mine.data.length; i++) {
      if (mine.data[i] !== native.data[i]) differ++;
      if (mine.data[i] > 0) foreground++;
    }
    const samePng = minePng.equals(fs.readFileSync(path.join(dir, "glass-12000.labels.png")));
    const notices = await page.evaluate(() => window.histoseg.notices);
    assert.ok(!notices.some((n) => n.startsWith("The label mask PNG")), notices.join("\n"));
    // the overlay is a picture of the slide: at 1/2 (6000x6000 = 36 MP), and the page says so
    const overlay = (await download(page, "#export-overlay")).bytes;
    assert.deepEqual([overlay.readUInt32BE(16), overlay.readUInt32BE(20)], [6000, 6000]);
    const said = await page.evaluate(() => window.histoseg.notices);
    assert.ok(said.some((n) => n.startsWith("The overlay PNG is at 1/2 of full resolution (6000×6000 px)")), said.join("\n"));
    // the objects and their measurements are at full resolution: the CLI's exactly
    const gj = JSON.parse((await download(page, "#export-geojson")).bytes.toString("utf8"));
    assert.deepEqual(gj, nativeGj, "the page's GeoJSON is the CLI's");

    // zoomed in on a gland: the part in view is drawn again from level 0 of the pyramid
    const [gx, gy] = nativeGj.features[0].geometry.coordinates[0][0];
    await viewAt(page, gx, gy, 1);
    await page.waitForFunction(() => window.histoseg.details.some((d) => d.level === 0), null, { timeout: 60_000 });
    const detail = await page.evaluate(() => {
      const d = window.histoseg.viewer().detail;
      const px = d.canvas.getContext("2d").getImageData(0, 0, d.canvas.width, d.canvas.height).data;
      let painted = 0;
      for (let i = 3; i < px.length; i += 4) if (px[i] > 0) painted++;
      return { x: d.x, y: d.y, width: d.width, height: d.height, w: d.canvas.width, painted };
    });
    assert.equal(detail.w, detail.width, "level 0: one canvas pixel per slide pixel");
    assert.ok(detail.x <= gx && gx < detail.x + detail.width && detail.y <= gy && gy < detail.y + detail.height, JSON.stringify(detail));
    assert.ok(detail.painted > 0, "the gland is drawn");

    // kept across a reload: the pyramid and the objects, not the pixels
    const kept = (await page.evaluate(() => window.histoseg.kept())).find((k) => k.name === "glass-12000.svs");
    assert.ok(kept && kept.tiled, JSON.stringify(kept));
    await page.reload();
    await page.waitForFunction(() => window.histoseg?.status === "ready", null, { timeout: 120_000 });
    const checked = await page.evaluate(() => window.histoseg.restoreChecks);
    await page.setInputFiles("#file", slide);
    await page.waitForFunction((n) => window.histoseg.restoreChecks > n, checked, { timeout: 120_000 });
    const restored = await page.evaluate(() => ({ restored: window.histoseg.restored.length, result: window.histoseg.lastResult }));
    assert.equal(restored.restored, 1, "the result is shown again");
    assert.deepEqual(restored.result.classAreas, r.classAreas);
    const again = JSON.parse((await download(page, "#export-geojson")).bytes.toString("utf8"));
    assert.deepEqual(again, nativeGj, "the restored GeoJSON is the same");
    console.log(`12000x12000 slide in the page: ${r.tiles} tiles (${r.glassTiles} of glass skipped) in ${((Date.now() - t0) / 1000).toFixed(0)} s; ` +
      `full-resolution label mask (${minePng.length} bytes, ${samePng ? "the CLI's file byte for byte" : "not the CLI's bytes"}): ${differ} of ${mine.data.length} pixels differ from the CLI's (${foreground} labelled); ${gj.features.length} objects as the CLI's; ` +
      `kept ${kept.rawBytes} bytes (level 0 alone would be 144000000); wasm memory: compute ${(memory.compute / 1e6).toFixed(0)} MB, display ${(memory.display / 1e6).toFixed(0)} MB`);
    assert.equal(differ, 0, "the page's labels are the CLI's");
    assert.ok(samePng, "the page's label PNG is the CLI's file");
    assert.ok(foreground > 0);
    assert.ok(kept.rawBytes < 2e6, `${kept.rawBytes} bytes kept`);
    assert.deepEqual(problems, []);
  } finally {
    await b.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
