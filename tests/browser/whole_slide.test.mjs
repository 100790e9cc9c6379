// The whole real SVS sample segmented in the page on the CPU ("Whole image"): the worker streams
// it in bands with its tissue found on a thumbnail (histoseg::whole_slide), as the command line's
// `segment --stream` does. The overlay grows band by band during the run; the labels are the
// CLI's, and the GeoJSON has one polygon per object, glands cut by the borders between bands of
// tiles included.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { serveDir } from "./server.mjs";
import { launch, readyPage, segmentationEnd, DATA } from "./browser.mjs";
import { readGrayPng } from "./png.mjs";

const ROOT = path.resolve(import.meta.dirname, "../..");
const DIST = path.join(ROOT, "dist");
const SVS = path.join(DATA, "samples/cmu-small-region.svs");
const CLI = path.join(ROOT, "target/release/histoseg");
let site;

before(async () => {
  assert.ok(fs.existsSync(path.join(DIST, "index.html")), "build the viewer first (cargo xtask test does)");
  site = await serveDir(DIST);
});
after(async () => { site?.server.close(); });

async function download(page, button) {
  const [d] = await Promise.all([page.waitForEvent("download"), page.click(button)]);
  const file = path.join(os.tmpdir(), `histoseg-${process.pid}-${d.suggestedFilename()}`);
  await d.saveAs(file);
  return fs.readFileSync(file);
}

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
    // the overlay grows band by band while the run goes on
    await page.waitForFunction(() => window.histoseg.rowsDrawn > 0, null, { timeout: 600_000 });
    const during = await page.evaluate(() => {
      const o = window.histoseg.viewer().overlay;
      const px = o.canvas.getContext("2d").getImageData(0, 0, o.canvas.width, o.canvas.height).data;
      let painted = 0;
      for (let i = 3; i < px.length; i += 4) if (px[i] > 0) painted++;
      return { status: window.histoseg.status, rows: window.histoseg.rowsDrawn, done: Number(document.getElementById("progress").value), painted, size: [o.width, o.height], preview: [o.canvas.width, o.canvas.height] };
    });
    assert.equal(during.status, "segmenting", "rows are drawn before the run ends");
    assert.deepEqual(during.size, [2220, 2967]);
    const st = await segmentationEnd(page, 800_000);
    assert.equal(st.status, "done", st.errors.join("; "));
    const r = st.result;
    assert.deepEqual([r.x, r.y, r.width, r.height], [0, 0, 2220, 2967]);
    assert.deepEqual([r.tiles, r.glassTiles], [Number(cliTiles), Number(cliGlass)], "the same tiles run and skipped as the CLI's");

    const mine = readGrayPng(await download(page, "#export-labels"));
    assert.deepEqual([mine.width, mine.height], [native.width, native.height]);
    let differ = 0;
    for (let i = 0; i < mine.data.length; i++) if (mine.data[i] !== native.data[i]) differ++;
    const gj = JSON.parse((await download(page, "#export-geojson")).toString("utf8"));
    // the model's grid (1 µm/px) has a row of tiles every 192 px, about 384 rows of the slide
    const borders = [1, 2, 3, 4, 5, 6, 7].map((k) => (k * 192 * 2967) / 1481);
    const across = gj.features.filter((f) => { const [y0, y1] = yExtent(f); return borders.some((y) => y0 < y && y < y1); }).length;
    console.log(`whole SVS in the page: ${r.tiles} tiles (${r.glassTiles} of glass skipped) with ${r.workers} CPU workers in ${((Date.now() - t0) / 1000).toFixed(0)} s; ` +
      `${differ} of ${mine.data.length} pixels differ from the CLI's streamed labels; ${gj.features.length} objects (CLI ${nativeGj.features.length}), ${across} across band borders`);
    const rowsDrawn = await page.evaluate(() => window.histoseg.rowsDrawn);
    console.log(`first rows drawn after ${during.done} of ${r.tiles} tiles: ${during.rows} rows, ${during.painted} pixels painted on a ${during.preview.join("x")} preview; ${rowsDrawn} rows drawn in all before the result`);
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
