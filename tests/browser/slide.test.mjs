// The viewer on the real Aperio SVS sample in headless Chromium (CPU backend, so it is quick on
// machines without a GPU): open the slide, segment a region, export the GeoJSON and the label
// PNG and check them against the mask and against the native CLI; cancel a whole-slide run and
// carry on; reload with the network off. Also writes a screenshot for a person to look at.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { serveDir } from "./server.mjs";
import { launch, readyPage, segmentationEnd, viewAt, download, DATA } from "./browser.mjs";
import { readGrayPng, components8 } from "./png.mjs";

const ROOT = path.resolve(import.meta.dirname, "../..");
const DIST = path.join(ROOT, "dist");
const SVS = path.join(DATA, "samples/cmu-small-region.svs");
const CLI = path.join(ROOT, "target/release/histoseg");
const SHOTS = process.env.HISTOSEG_SCREENSHOTS || path.join(ROOT, "runs");
let site;

before(async () => {
  assert.ok(fs.existsSync(path.join(DIST, "index.html")), "build the viewer first (cargo xtask test does)");
  site = await serveDir(DIST);
});
after(async () => { site?.server.close(); });

// Runs `fn` with a fresh headless Chromium (CPU backend) and always closes it.
async function withBrowser(fn) {
  const b = await launch({ webgpu: false });
  try {
    return await fn(b);
  } finally {
    await b.close();
  }
}

const CPU_GLANDS = "?backend=cpu&model=glands";

async function openSvs(page) {
  await page.setInputFiles("#file", SVS);
  await page.waitForFunction(() => window.histoseg.status === "opened" || window.histoseg.errors.length, null, { timeout: 60_000 });
  const image = await page.evaluate(() => window.histoseg.image);
  assert.ok(image, `the slide did not open: ${await page.evaluate(() => window.histoseg.errors.join("; "))}`);
  return image;
}

async function waitDone(page, timeout = 300_000) {
  const st = await segmentationEnd(page, timeout);
  assert.equal(st.status, "done", st.errors.join("; "));
  return st.result;
}

test("SVS: open, segment a region, export GeoJSON and label PNG that match the mask and the CLI", { timeout: 600_000 }, async () => {
  await withBrowser(async (b) => {
    const { page, problems } = await readyPage(b.context, site.url, CPU_GLANDS);
    const requests = [];
    page.on("request", (r) => { if (!r.url().startsWith("blob:")) requests.push(r.url()); });
    const image = await openSvs(page);
    assert.equal(image.format, "Aperio SVS");
    assert.deepEqual([image.width, image.height], [2220, 2967]);
    assert.equal(image.umPerPx, 0.499, "µm/px read from the SVS description");
    assert.equal(await page.inputValue("#umpp"), "0.499");

    // zoom in on tissue and segment what is on screen (several tiles, so that the pool's workers
    // share them)
    await viewAt(page, 1100, 1400, 1.2);
    await page.click("#segment-view");
    const r = await waitDone(page);
    // on the CPU the tiles are shared by a pool of workers, one per core; the CLI comparison below
    // shows that this changes no pixel
    assert.equal(r.workers, Math.min(8, os.cpus().length), "one CPU worker per core");
    assert.ok(r.tiles >= 3, `${r.tiles} tiles`);
    assert.ok(r.width > 100 && r.height > 100 && r.width * r.height < 900 * 700, `visible region ${r.width}x${r.height}`);
    assert.ok(r.x > 0 && r.y > 0 && r.x + r.width <= 2220 && r.y + r.height <= 2967);
    const labels = Uint8Array.from(await page.evaluate(async () => Array.from(await window.histoseg.labels())));
    assert.equal(labels.length, r.width * r.height);
    assert.ok(labels.some((l) => l > 0), "glands or gland-like tissue found in the region");

    // GeoJSON: valid, inside the image and the region, one polygon per connected component
    const gj = JSON.parse((await download(page, "#export-geojson")).bytes.toString("utf8"));
    assert.equal(gj.type, "FeatureCollection");
    const perClass = {};
    for (const f of gj.features) {
      assert.equal(f.type, "Feature");
      assert.equal(f.geometry.type, "Polygon");
      assert.ok(typeof f.properties.classification.name === "string" && f.properties.classification.color.length === 3);
      perClass[f.properties.classification.name] = (perClass[f.properties.classification.name] || 0) + 1;
      for (const ring of f.geometry.coordinates) {
        assert.ok(ring.length >= 4, "a linear ring has at least 4 positions");
        assert.deepEqual(ring[0], ring[ring.length - 1], "rings are closed");
        for (const [x, y] of ring) {
          assert.ok(x >= r.x - 0.5 && x <= r.x + r.width - 0.5 && y >= r.y - 0.5 && y <= r.y + r.height - 0.5, `vertex (${x}, ${y}) outside the region`);
          assert.ok(x >= -0.5 && y >= -0.5 && x <= 2220 && y <= 2967);
        }
      }
    }
    // objects are 8-connected regions, split further where the model marks a boundary between
    // touching glands; every labelled pixel belongs to exactly one of them
    const comps = components8(labels, r.width, r.height);
    assert.ok(gj.features.length >= Object.values(comps).reduce((a, b) => a + b, 0), "at least one polygon per 8-connected region");
    assert.ok((perClass.gland || 0) >= (comps[1] || 0));
    const area = gj.features.reduce((a, f) => a + f.properties.measurements["Area px^2"], 0);
    assert.equal(area, labels.filter((l) => l > 0).length, "the objects cover every labelled pixel once");
    assert.ok(labels.every((l) => l < 2), "no pixel keeps the boundary class");
    assert.equal(r.objects, gj.features.length);

    // label PNG: the page's mask, and the native CLI's on the same region
    const png = await download(page, "#export-labels");
    assert.match(png.name, /^cmu-small-region_x\d+_y\d+_\d+x\d+\.labels\.png$/);
    const mine = readGrayPng(png.bytes);
    assert.deepEqual([mine.width, mine.height], [r.width, r.height]);
    assert.ok(mine.data.every((v, i) => v === labels[i]), "the PNG holds the mask");
    assert.ok(fs.existsSync(CLI), `the CLI is built by cargo test --release --features cli (${CLI})`);
    const out = fs.mkdtempSync(path.join(os.tmpdir(), "histoseg-cli-"));
    execFileSync(CLI, ["segment", "--model", path.join(ROOT, "models/glands.histoseg"), "--input", SVS, "--output", out,
      "--region", `${r.x},${r.y},${r.width},${r.height}`]);
    const native = readGrayPng(fs.readFileSync(path.join(out, "cmu-small-region.labels.png")));
    assert.deepEqual([native.width, native.height], [r.width, r.height]);
    let differ = 0;
    for (let i = 0; i < labels.length; i++) if (native.data[i] !== labels[i]) differ++;
    console.log(`${r.workers} CPU workers; browser (wasm CPU) vs native CLI on ${r.width}x${r.height} at (${r.x}, ${r.y}): ${differ} of ${labels.length} pixels differ`);
    assert.ok(differ / labels.length < 0.001, `${differ} pixels differ: more than float ties`);

    // the other exports come out too
    const csv = (await download(page, "#export-csv")).bytes.toString("utf8");
    assert.match(csv, /^class,area_px,area_um2,fraction,objects\n/);
    const json = JSON.parse((await download(page, "#export-json")).bytes.toString("utf8"));
    assert.equal(json.um_per_px, 0.499);
    assert.equal(json.objects.length, gj.features.length);
    const ov = await download(page, "#export-overlay");
    assert.deepEqual([...ov.bytes.subarray(1, 4)].map((c) => String.fromCharCode(c)).join(""), "PNG");

    // overlay controls: contour mode draws fewer pixels, hiding the class draws none, C toggles
    const drawn = () => page.evaluate(() => {
      const c = window.histoseg.viewer().overlay.canvas;
      const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
      let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++;
      return n;
    });
    const filled = await drawn();
    assert.equal(filled, labels.filter((l) => l > 0).length);
    // the overlay is drawn by the compute worker: each change is counted when it is on screen
    const redrawn = async (action) => {
      const n = await page.evaluate(() => window.histoseg.overlays);
      await action();
      await page.waitForFunction((n) => window.histoseg.overlays > n, n);
      return drawn();
    };
    const contour = await redrawn(() => page.selectOption("#mode", "contour"));
    assert.ok(contour > 0 && contour < filled, `contour ${contour} vs filled ${filled}`);
    assert.equal(await redrawn(() => page.uncheck("#class-visible-1")), 0);
    assert.equal(await redrawn(() => page.check("#class-visible-1")), contour);
    assert.equal(await redrawn(() => page.selectOption("#mode", "fill")), filled);
    await page.focus("#viewer");
    await page.keyboard.press("c");
    assert.equal(await page.evaluate(() => window.histoseg.viewer().overlayVisible), false);
    await page.keyboard.press("c");
    assert.equal(await page.evaluate(() => window.histoseg.viewer().overlayVisible), true);

    fs.mkdirSync(SHOTS, { recursive: true });
    await page.screenshot({ path: path.join(SHOTS, "viewer-svs.png") });
    assert.deepEqual(problems, [], "no page errors and no Content-Security-Policy violations");
    assert.deepEqual(requests, [], "opening, segmenting and exporting made no request");
  });
});

test("best quality (8 orientations): the page's mask is the CLI's --tta mask, and differs from fast", { timeout: 600_000 }, async () => {
  await withBrowser(async (b) => {
    const { page, problems } = await readyPage(b.context, site.url, CPU_GLANDS);
    await openSvs(page);
    await viewAt(page, 1100, 1400, 5); // about one 256 px tile of the model's
    const run = async (quality) => {
      await page.selectOption("#quality", quality);
      await page.click("#segment-view");
      const r = await waitDone(page);
      return { r, labels: Uint8Array.from(await page.evaluate(async () => Array.from(await window.histoseg.labels()))) };
    };
    const fast = await run("fast");
    const best = await run("best");
    assert.equal(fast.r.tta, false);
    assert.equal(best.r.tta, true);
    const r = best.r;
    assert.deepEqual([fast.r.x, fast.r.y, fast.r.width, fast.r.height], [r.x, r.y, r.width, r.height], "the same region");
    const out = fs.mkdtempSync(path.join(os.tmpdir(), "histoseg-cli-"));
    execFileSync(CLI, ["segment", "--tta", "--model", path.join(ROOT, "models/glands.histoseg"), "--input", SVS, "--output", out,
      "--region", `${r.x},${r.y},${r.width},${r.height}`]);
    const native = readGrayPng(fs.readFileSync(path.join(out, "cmu-small-region.labels.png")));
    assert.deepEqual([native.width, native.height], [r.width, r.height]);
    const count = (a, b) => a.reduce((n, v, i) => n + (v !== b[i]), 0);
    const vsCli = count(best.labels, native.data), vsFast = count(best.labels, fast.labels);
    console.log(`best on ${r.width}x${r.height} (${r.tiles} tiles, ${r.msPerTile.toFixed(0)} ms/tile, fast ${fast.r.msPerTile.toFixed(0)} ms/tile): ${vsCli} pixels differ from the CLI's --tta, ${vsFast} from fast`);
    assert.ok(vsCli / r.width / r.height < 0.001, `${vsCli} pixels differ from the CLI: more than float ties`);
    assert.ok(vsFast > 0, "the orientations change the answer somewhere");
    assert.deepEqual(problems, []);
  });
});

test("the glands sample says plainly that skin is outside the glands model's domain", { timeout: 300_000 }, async () => {
  await withBrowser(async (b) => {
    const { page, problems } = await readyPage(b.context, site.url, CPU_GLANDS);
    await page.click("#sample-glands");
    await page.waitForFunction(() => window.histoseg.status === "opened", null, { timeout: 60_000 });
    assert.equal((await page.evaluate(() => window.histoseg.image)).name, "cmu-small-region.svs");
    const notices = await page.evaluate(() => window.histoseg.notices);
    assert.ok(notices.some((n) => /^This sample is skin, not colon: .*outside what it was trained for/.test(n)), notices.join(" | "));
    assert.equal(await page.isVisible("#notice"), true, "the notice is on screen");
    assert.deepEqual(problems, []);
  });
});

test("during a whole-slide run the page answers at once; cancel keeps the slide and a new run works", { timeout: 600_000 }, async () => {
  await withBrowser(async (b) => {
    const { page } = await readyPage(b.context, site.url, CPU_GLANDS);
    await openSvs(page);
    await page.click("#segment-all");
    await page.waitForFunction(() => Number(document.getElementById("progress").value) >= 2, null, { timeout: 120_000 });
    const total = await page.evaluate(() => Number(document.getElementById("progress").max));
    assert.ok(total > 20, `the whole slide is many tiles (${total})`);
    // the page answers while segmenting: the run is in the compute worker, so the main thread
    // has no long task, input is handled at once, and the viewer still gets new tiles from the
    // display worker. Measured over several CPU tiles.
    await page.evaluate(() => {
      window.__longTasks = [];
      new PerformanceObserver((list) => { for (const e of list.getEntries()) window.__longTasks.push(e.duration); }).observe({ type: "longtask" });
    });
    const tilesBefore = await page.evaluate(() => window.histoseg.viewer().tiles.size);
    await viewAt(page, 1500, 2500, 1);
    const clickMs = [];
    for (let i = 0; i < 6; i++) {
      await page.evaluate(() => {
        window.__click = null;
        document.getElementById("zoom-in").addEventListener("click", (ev) => { window.__click = performance.now() - ev.timeStamp; }, { once: true });
      });
      await page.click("#zoom-in");
      clickMs.push(await page.evaluate(() => window.__click));
      await page.waitForTimeout(1000);
    }
    const timerMs = await page.evaluate(async () => {
      const out = [];
      for (let i = 0; i < 20; i++) {
        const t = performance.now();
        await new Promise((r) => setTimeout(r, 0));
        out.push(performance.now() - t);
        await new Promise((r) => setTimeout(r, 50));
      }
      return out;
    });
    const tilesAfter = await page.evaluate(() => window.histoseg.viewer().tiles.size);
    const longTasks = await page.evaluate(() => window.__longTasks);
    const doneDuring = await page.evaluate(() => Number(document.getElementById("progress").value));
    console.log(`during the run (${doneDuring} of ${total} tiles done): click handled after ${clickMs.map((v) => v.toFixed(1)).join(", ")} ms; ` +
      `setTimeout(0) max ${Math.max(...timerMs).toFixed(1)} ms; long tasks ${longTasks.length ? longTasks.map((v) => v.toFixed(0)).join(", ") + " ms" : "none"}; ` +
      `display tiles ${tilesBefore} -> ${tilesAfter}`);
    assert.ok(clickMs.every((v) => v !== null && v < 100), `clicks waited ${clickMs.join(", ")} ms`);
    assert.ok(Math.max(...timerMs) < 100, `a timer waited ${Math.max(...timerMs)} ms`);
    assert.ok(longTasks.every((d) => d < 100), `main-thread tasks of ${longTasks.join(", ")} ms`);
    assert.ok(tilesAfter > tilesBefore, "the viewer loaded the tiles of the new view during the run");
    assert.equal(await page.evaluate(() => window.histoseg.status), "segmenting", "the run was still going while this was measured");
    await page.click("#cancel");
    await page.waitForFunction(() => window.histoseg.status === "cancelled", null, { timeout: 60_000 });
    assert.match(await page.textContent("#progress-text"), /Cancelled after \d+ of \d+ tiles/);
    const image = await page.evaluate(() => window.histoseg.image);
    assert.deepEqual([image.width, image.height], [2220, 2967], "the slide is still loaded");
    assert.equal(await page.isEnabled("#segment-view"), true);
    await viewAt(page, 1000, 1500, 3);
    await page.click("#segment-view");
    const r = await waitDone(page);
    assert.ok(r.width > 0 && r.height > 0);
  });
});

test("after one visit the viewer loads and segments with the network off", { timeout: 600_000 }, async () => {
  await withBrowser(async (b) => {
    try {
      const { page } = await readyPage(b.context, site.url, CPU_GLANDS);
      // wait until the service worker has cached the app and controls the page
      await page.evaluate(async () => { await navigator.serviceWorker.ready; });
      await page.reload();
      await page.waitForFunction(() => window.histoseg?.status === "ready" && navigator.serviceWorker.controller, null, { timeout: 120_000 });
      const cached = await page.evaluate(async () => {
        const keys = (await caches.keys()).filter((k) => k.startsWith("histoseg-"));
        if (keys.length !== 1) throw new Error(`caches: ${keys}`);
        return (await (await caches.open(keys[0])).keys()).map((r) => new URL(r.url).pathname);
      });
      for (const p of ["/", "/histoseg_bg.wasm", "/models/glands.histoseg", "/models/nuclei.histoseg"]) assert.ok(cached.includes(p), `${p} cached`);
      assert.ok(cached.every((p) => !p.startsWith("blob:") && !p.startsWith("data:")), "only the app's own files are cached");

      await b.context.setOffline(true);
      // the network really is off: a file the app never fetched cannot be had
      const reach = await page.evaluate(async () => { try { return (await fetch("samples/ATTRIBUTION.md")).status; } catch { return "failed"; } });
      assert.equal(reach, "failed");
      await page.reload();
      await page.waitForFunction(() => ["ready", "error"].includes(window.histoseg?.status), null, { timeout: 180_000 });
      assert.equal(await page.evaluate(() => window.histoseg.status), "ready", "the app and model load from the cache");
      await openSvs(page);
      await viewAt(page, 1100, 1400, 4);
      await page.click("#segment-view");
      const r = await waitDone(page);
      assert.ok(r.width > 0);
    } finally {
      await b.context.setOffline(false).catch(() => {});
    }
  });
});
