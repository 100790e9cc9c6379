// Every bad input of tests/bad_inputs/cases.json through the page (CPU backend): the exact
// message in the error box, the image and mask already open kept, conversions noted and the
// converted images segmented, a slide far larger than memory opened and segmented by region, a
// file too large for the browser refused before it is read, and bad model files explained.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import zlib from "node:zlib";
import { serveDir } from "./server.mjs";
import { launch, readyPage, segmentationEnd, viewAt, chromiumMemoryMb } from "./browser.mjs";

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

const state = (page) => page.evaluate(async () => ({
  status: window.histoseg.status, errors: window.histoseg.errors.slice(), image: window.histoseg.image, opened: window.histoseg.opened,
  result: window.histoseg.lastResult, labels: (await window.histoseg.labels())?.length ?? null,
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
      if (c.nothing) {
        // opens, but nothing in it is tissue: refused with the reason before any tile runs
        await page.click("#segment-all");
        await page.waitForFunction((n) => window.histoseg.errors.length > n, after.errors.length);
        const st = await state(page);
        assert.equal(st.error, `Cannot segment: ${c.nothing}`, c.file);
        assert.equal(st.status, "opened", `${c.file}: not a run`);
        assert.equal(st.image.name, c.file, `${c.file}: the image stays open`);
        continue;
      }
      if (c.streams) {
        // far larger than memory: "Whole image" would stream it for hours (as a 144 MP slide does
        // in whole_slide.test.mjs); a region of it segments
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

    // 3 GB files (sparse): the page reads a file lazily, so neither is read whole. A PNG that
    // size is refused from its size (PNGs are decoded whole); a file that is no image at all is
    // refused from its first bytes.
    const huge = path.join(os.tmpdir(), `histoseg-${process.pid}-whole-slide.png`);
    const fd = fs.openSync(huge, "w");
    fs.writeSync(fd, Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));
    fs.closeSync(fd);
    fs.truncateSync(huge, 3e9);
    const junk = path.join(os.tmpdir(), `histoseg-${process.pid}-not-a-slide.svs`);
    fs.writeFileSync(junk, "");
    fs.truncateSync(junk, 3e9);
    try {
      let { before, after } = await choose(page, huge);
      assert.equal(after.error, `Cannot open ${path.basename(huge)}: the file is 3.0 GB: PNG, JPEG and BMP files are decoded whole and histoseg takes them up to 1.0 GB; convert it to a tiled, pyramidal TIFF (for example \`vips tiffsave IN OUT.tif --tile --pyramid --compression jpeg\`), which is read tile by tile at any size`);
      assert.deepEqual(after.image, before.image);
      ({ before, after } = await choose(page, junk));
      assert.equal(after.error, `Cannot open ${path.basename(junk)}: unsupported image format (the file is not a recognised image): histoseg opens PNG, JPEG, BMP, TIFF and Aperio SVS`);
      assert.deepEqual(after.image, before.image);
      assert.equal(after.labels, before.labels, "the mask stays");
    } finally {
      fs.rmSync(huge, { force: true });
      fs.rmSync(junk, { force: true });
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

// A PNG of `side` x `side` pixels of one colour (small on disk, full size when decoded).
function flatPng(side, rgb) {
  const crcTable = Array.from({ length: 256 }, (_, n) => { let c = n; for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1; return c >>> 0; });
  const crc = (buf) => { let c = 0xffffffff; for (const b of buf) c = crcTable[(c ^ b) & 0xff] ^ (c >>> 8); return (c ^ 0xffffffff) >>> 0; };
  const chunk = (type, data) => {
    const body = Buffer.concat([Buffer.from(type), data]);
    const out = Buffer.alloc(body.length + 8);
    out.writeUInt32BE(data.length, 0); body.copy(out, 4); out.writeUInt32BE(crc(body), body.length + 4);
    return out;
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(side, 0); ihdr.writeUInt32BE(side, 4); ihdr[8] = 8; ihdr[9] = 2;
  const row = Buffer.concat([Buffer.from([0]), Buffer.from(Array(side).fill(rgb).flat())]);
  const raw = Buffer.concat(Array(side).fill(row));
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk("IHDR", ihdr), chunk("IDAT", zlib.deflateSync(raw, { level: 9 })), chunk("IEND", Buffer.alloc(0))]);
}

test("the largest plain image accepted (100 MP PNG) opens and segments in the page", { timeout: 600_000 }, async () => {
  const file = path.join(os.tmpdir(), `histoseg-${process.pid}-100mp.png`);
  fs.writeFileSync(file, flatPng(10_000, [230, 180, 200]));
  const b = await launch({ webgpu: false });
  try {
    const { page, problems } = await readyPage(b.context, site.url, "?backend=cpu&model=glands");
    const t0 = Date.now();
    const { after } = await choose(page, file);
    const openS = (Date.now() - t0) / 1000;
    assert.deepEqual(after.errors, []);
    assert.deepEqual([after.image.width, after.image.height], [10_000, 10_000]);
    const wasmMb = await page.evaluate(async () => Object.values(await window.histoseg.wasmMemory()).reduce((a, b) => a + b) / 2 ** 20);
    await viewAt(page, 5000, 5000, 2);
    await page.click("#segment-view");
    const seg = await segmentationEnd(page);
    assert.equal(seg.status, "done", seg.errors.join("; "));
    const peak = chromiumMemoryMb("renderer", "VmHWM");
    console.log(`100 MP PNG (${(fs.statSync(file).size / 1e3).toFixed(0)} kB on disk): opened in ${openS.toFixed(1)} s; wasm heaps of both workers ${wasmMb.toFixed(0)} MB; renderer peak ${peak.toFixed(0)} MB; a ${seg.result.width}x${seg.result.height} region segmented`);
    assert.deepEqual(problems, []);
  } finally {
    await b.close();
    fs.rmSync(file, { force: true });
  }
});
