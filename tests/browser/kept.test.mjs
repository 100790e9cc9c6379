// A finished result survives a reload (www/kept.js): it is kept in the browser's own storage and
// shown again, the same labels and GeoJSON, when the same file is opened with the same model,
// even when the page was reloaded in the middle of a later run. Another file shows nothing;
// "Forget kept results" empties the storage; only the newest 8 results are kept.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { serveDir } from "./server.mjs";
import { launch, readyPage, segmentationEnd, viewAt } from "./browser.mjs";

const ROOT = path.resolve(import.meta.dirname, "../..");
const DIST = path.join(ROOT, "dist");
const HE = path.join(ROOT, "www/samples/he-1000x1000.png");
let site;

before(async () => {
  assert.ok(fs.existsSync(path.join(DIST, "index.html")), "build the viewer first (cargo xtask test does)");
  site = await serveDir(DIST);
});
after(async () => { site?.server.close(); });

const labels = (page) => page.evaluate(async () => Array.from((await window.histoseg.labels()) ?? []));
const geojson = (page) => page.evaluate(() => window.histoseg.geojson());

// Opens `file` and waits until the page has looked for a kept result of it.
async function open(page, file) {
  const checked = await page.evaluate(() => window.histoseg.restoreChecks);
  await page.setInputFiles("#file", file);
  await page.waitForFunction((n) => window.histoseg.restoreChecks > n, checked, { timeout: 120_000 });
}

test("a finished result is kept in the browser and shown again after a reload", { timeout: 600_000 }, async () => {
  const b = await launch({ webgpu: false });
  try {
    const { page, problems } = await readyPage(b.context, site.url, "?backend=cpu&model=glands");
    await open(page, HE);
    assert.deepEqual(await page.evaluate(() => window.histoseg.restored), [], "nothing kept yet");
    await page.fill("#umpp", "0.4"); // 400x400 px at the model's 1 µm/px: four tiles
    await page.click("#segment-all");
    const seg = await segmentationEnd(page);
    assert.equal(seg.status, "done", seg.errors.join("; "));
    const [mask, gj] = [await labels(page), await geojson(page)];
    assert.ok(mask.some((l) => l > 0), "glands found");
    const kept = await page.evaluate(() => window.histoseg.kept());
    assert.equal(kept.length, 1);
    const k = kept[0];
    // what is kept: the region's labels (a byte a pixel) and where they lie; never the image
    assert.deepEqual(Object.keys(k).sort(), ["backend", "fileKey", "glassTiles", "height", "key", "modelId", "name", "rawBytes", "savedAt", "tiled", "tiles", "umPerPx", "width", "x", "y"]);
    assert.equal(k.rawBytes, seg.result.width * seg.result.height);
    assert.deepEqual([k.name, k.modelId, k.umPerPx, k.width, k.height], ["he-1000x1000.png", "glands", 0.4, 1000, 1000]);

    // a second run of the same file, and the page reloaded in the middle of it
    await page.click("#segment-all");
    await page.waitForFunction(() => Number(document.getElementById("progress").value) >= 1, null, { timeout: 120_000 });
    await page.reload();
    await page.waitForFunction(() => window.histoseg?.status === "ready", null, { timeout: 120_000 });
    await open(page, HE);
    const restored = await page.evaluate(() => ({ restored: window.histoseg.restored, result: window.histoseg.lastResult, status: window.histoseg.status, overlays: window.histoseg.overlays }));
    assert.equal(restored.restored.length, 1, "the finished result is shown again");
    assert.equal(restored.restored[0].savedAt, k.savedAt, "the first run's, not the interrupted one's");
    assert.equal(restored.status, "opened", "nothing ran");
    assert.ok(restored.result.restored && restored.overlays >= 1, "its mask is drawn");
    assert.deepEqual(await labels(page), mask, "the same labels");
    assert.equal(await geojson(page), gj, "the same objects");
    assert.equal(await page.isEnabled("#export-geojson"), true, "and it exports");

    // another file shows nothing kept; forgetting empties the storage
    await open(page, path.join(ROOT, "tests/bad_inputs/grey.png"));
    assert.equal(await page.evaluate(() => window.histoseg.restored.length), 1);
    assert.equal(await page.evaluate(() => window.histoseg.lastResult.restored), true, "(the last result shown was the kept one)");
    assert.equal(await page.isEnabled("#export-geojson"), false, "the other file has no result");
    await page.click("#forget");
    await page.waitForFunction(async () => (await window.histoseg.kept()).length === 0, null, { timeout: 30_000 });
    await open(page, HE);
    assert.equal(await page.evaluate(() => window.histoseg.restored.length), 1, "forgotten: not shown again");
    // only the newest 8 are kept: the oldest go first (kept.js itself, in the page)
    const left = await page.evaluate(async () => {
      const kept = await import("./kept.js");
      for (let i = 0; i < 10; i++) {
        await kept.keep({ key: `test-${i}`, name: `image-${i}.png`, modelId: "glands", x: 0, y: 0, width: 1, height: 1, umPerPx: null, raw: new Uint8Array(1) });
        await new Promise((r) => setTimeout(r, 5));
      }
      const names = (await kept.list()).map((e) => e.name).sort();
      await kept.forget();
      return names;
    });
    assert.deepEqual(left, [2, 3, 4, 5, 6, 7, 8, 9].map((i) => `image-${i}.png`));
    console.log(`kept ${k.rawBytes} bytes of labels for ${k.name}; restored after a reload mid-run: same ${mask.length} labels and GeoJSON; forgotten on request`);
    assert.deepEqual(problems, []);
  } finally {
    await b.close();
  }
});

// Regions of one file segmented one after another: each is shown (the current one on top), and
// after a reload every one comes back; a region that covers earlier ones replaces them.
test("several regions are shown at once and all come back after a reload", { timeout: 600_000 }, async () => {
  const b = await launch({ webgpu: false });
  try {
    const { page, problems } = await readyPage(b.context, site.url, "?backend=cpu&model=nuclei");
    await open(page, HE);
    const regionAt = async (cx, cy) => {
      await viewAt(page, cx, cy, 3);
      await page.click("#segment-view");
      const seg = await segmentationEnd(page);
      assert.equal(seg.status, "done", seg.errors.join("; "));
      return seg.result;
    };
    const a = await regionAt(250, 250);
    const bb = await regionAt(750, 750);
    assert.ok(a.x + a.width <= bb.x || a.y + a.height <= bb.y, `the regions do not overlap: ${JSON.stringify([a, bb])}`);
    // what the viewer draws: the current region and the earlier one, each with nuclei painted
    const shown = () => page.evaluate(() => {
      const v = window.histoseg.viewer();
      const painted = (o) => {
        const px = o.canvas.getContext("2d").getImageData(0, 0, o.canvas.width, o.canvas.height).data;
        let n = 0;
        for (let i = 3; i < px.length; i += 4) if (px[i] > 0) n++;
        return { x: o.x, y: o.y, width: o.width, height: o.height, painted: n };
      };
      return { overlay: painted(v.overlay), others: v.others.map(painted) };
    });
    let s = await shown();
    const place = (o) => [o.x, o.y, o.width, o.height];
    assert.deepEqual(place(s.overlay), place(bb));
    assert.deepEqual(s.others.map(place), [place(a)]);
    assert.ok(s.overlay.painted > 0 && s.others[0].painted > 0, JSON.stringify(s));

    // a reload: both come back, the later one current
    await page.reload();
    await page.waitForFunction(() => window.histoseg?.status === "ready", null, { timeout: 120_000 });
    await open(page, HE);
    assert.equal(await page.evaluate(() => window.histoseg.restored.length), 2, "both regions are shown again");
    await page.waitForFunction(() => window.histoseg.viewer().others.length === 1, null, { timeout: 30_000 });
    const again = await shown();
    assert.deepEqual(again, s, "the same two overlays");

    // the whole image covers both: it replaces them
    await page.click("#segment-all");
    const whole = await segmentationEnd(page);
    assert.equal(whole.status, "done", whole.errors.join("; "));
    s = await shown();
    assert.deepEqual([place(s.overlay), s.others.length], [[0, 0, 1000, 1000], 0]);
    console.log(`two regions shown at once (${a.width}x${a.height} and ${bb.width}x${bb.height} px, ${again.others[0].painted} and ${again.overlay.painted} pixels painted), both restored after a reload; the whole image replaced them`);
    await page.click("#forget");
    assert.deepEqual(problems, []);
  } finally {
    await b.close();
  }
});
