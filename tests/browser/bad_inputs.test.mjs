// Every bad input of tests/bad_inputs/cases.json through the page (CPU backend): the exact
// message in the error box, the image and mask already open kept, conversions noted and the
// converted images segmented, a slide far larger than memory opened and segmented by region, a
// file too large for the browser refused before it is read, and bad model files explained.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { serveDir } from "./server.mjs";
import { launch, readyPage, segmentationEnd, viewAt } from "./browser.mjs";

const ROOT = path.resolve(import.meta.dirname, "../..");
const DIST = path.join(ROOT, "dist");
const BAD = path.join(ROOT, "tests/bad_inputs");
const CASES = JSON.parse(fs.readFileSync(path.join(BAD, "cases.json"), "utf8"));
let site;

before(async () => {
  assert.ok(fs.existsSync(path.join(DIST, "index.html")), "build the viewer first (cargo xtask test does)");
  site = await serveDir(DIST);
});
after(async () => { site?.server.close(); });

const state = (page) => page.evaluate(() => ({
  status: window.histoseg.status, errors: window.histoseg.errors.slice(), image: window.histoseg.image, opened: window.histoseg.opened,
  result: window.histoseg.lastResult, labels: window.histoseg.labels()?.length ?? null,
  info: document.getElementById("image-info").textContent, error: document.getElementById("error").textContent,
}));

// Chooses `file` in the file input and waits until it is opened or refused.
async function choose(page, file) {
  const before = await state(page);
  await page.setInputFiles("#file", file);
  await page.waitForFunction(({ errors, opened }) => window.histoseg.errors.length > errors || window.histoseg.opened > opened,
    { errors: before.errors.length, opened: before.opened }, { timeout: 120_000 });
  return { before, after: await state(page) };
}

async function segmentWhole(page) {
  await page.click("#segment-all");
  return segmentationEnd(page);
}

test("bad images: the exact message, nothing lost; converted images open, are noted and segment", { timeout: 900_000 }, async () => {
  const b = await launch({ webgpu: false });
  try {
    const { page, problems } = await readyPage(b.context, site.url, "?backend=cpu&model=glands");
    // work the user already has: an open image with a mask
    await choose(page, path.join(BAD, "bigtiff.tif"));
    let seg = await segmentWhole(page);
    assert.equal(seg.status, "done", seg.errors.join("; "));

    for (const c of CASES.images) {
      const { before, after } = await choose(page, path.join(BAD, c.file));
      if (c.message) {
        assert.equal(after.error, `Cannot open ${c.file}: ${c.message}`, c.file);
        assert.deepEqual(after.image, before.image, `${c.file}: the open image stays`);
        assert.equal(after.labels, before.labels, `${c.file}: the mask stays`);
        assert.ok(after.labels > 0);
        continue;
      }
      assert.equal(after.image.name, c.file, `${c.file} opened: ${after.errors.at(-1)}`);
      assert.equal(after.image.note, c.note ?? null, c.file);
      if (c.note) assert.ok(after.info.includes(`Converted: ${c.note}.`), after.info);
      if (c.whole) {
        // far larger than memory: the whole image is refused with the reason, a region works
        await page.click("#segment-all");
        await page.waitForFunction((n) => window.histoseg.errors.length > n, after.errors.length);
        assert.equal((await state(page)).error, `Cannot segment: ${c.whole}`);
        const [x, y, w] = c.region;
        await viewAt(page, x + w / 2, y + w / 2, 1);
        await page.click("#segment-view");
        seg = await segmentationEnd(page);
        assert.equal(seg.status, "done", seg.errors.join("; "));
        assert.ok(seg.result.width <= 1400 && seg.result.x > 29_000, `region ${JSON.stringify(seg.result)}`);
      } else {
        seg = await segmentWhole(page);
        assert.equal(seg.status, "done", `${c.file}: ${seg.errors.join("; ")}`);
        assert.deepEqual([seg.result.width, seg.result.height], [after.image.width, after.image.height], c.file);
      }
    }

    // a file larger than the browser can hold: refused from its size, before it is read (sparse)
    const huge = path.join(os.tmpdir(), `histoseg-${process.pid}-whole-slide.svs`);
    fs.writeFileSync(huge, "");
    fs.truncateSync(huge, 3e9);
    try {
      const { before, after } = await choose(page, huge);
      assert.equal(after.error, `Cannot open ${path.basename(huge)}: the file is 3.0 GB; the browser viewer reads a whole file into memory and takes files up to 2 GB. Segment it with the histoseg command line tool, which reads slides tile by tile.`);
      assert.deepEqual(after.image, before.image);
    } finally {
      fs.rmSync(huge, { force: true });
    }
    assert.deepEqual(problems, []);
    console.log(`${CASES.images.length} bad or unusual images and one 3 GB file checked`);
  } finally {
    await b.close();
  }
});

test("bad model files: the page says why and keeps the open image", { timeout: 600_000 }, async () => {
  // no service worker, so that the route below answers every model request
  const b = await launch({ webgpu: false, serviceWorkers: "block" });
  try {
    let bad = null;
    await b.context.route("**/models/glands.histoseg", (route) => (bad ? route.fulfill({ status: 200, body: bad }) : route.continue()));
    const { page } = await readyPage(b.context, site.url, "?backend=cpu&model=nuclei");
    await choose(page, path.join(BAD, "grey.png"));
    for (const c of CASES.models) {
      bad = fs.readFileSync(path.join(BAD, c.file));
      const n = (await state(page)).errors.length;
      await page.selectOption("#model", "glands");
      await page.waitForFunction((n) => window.histoseg.errors.length > n, n, { timeout: 120_000 });
      const st = await state(page);
      assert.equal(st.error, `The model could not be loaded: ${c.message}`, c.file);
      assert.equal(st.image.name, "grey.png", `${c.file}: the open image stays`);
      await page.selectOption("#model", "nuclei");
    }
    // the image is still there to segment with a good model
    const seg = await segmentWhole(page);
    assert.equal(seg.status, "done", seg.errors.join("; "));
  } finally {
    await b.close();
  }
});
