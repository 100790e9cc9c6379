// Faults during a segmentation (issue 6):
// - the WebGPU device is lost mid-run (the test calls destroy() on the device burn created, as a
//   driver reset would end it): the run carries on on the CPU, keeps the tiles already done and
//   the open image, and its mask matches a CPU-only run of the same region;
// - a second image is opened while a run is going: the run stops, its mask is never drawn on the
//   new image, and the new image segments.
// - WebGPU unusable in three ways (absent, no adapter, device refused): CPU with a notice.
// (Cancel-then-restart is covered by slide.test.mjs; memory across 20 runs by memory.test.mjs.)
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { serveDir } from "./server.mjs";
import { launch, readyPage, segmentationEnd, addWorkerInitScript, inWorkers } from "./browser.mjs";

const ROOT = path.resolve(import.meta.dirname, "../..");
const DIST = path.join(ROOT, "dist");
const HE = path.join(ROOT, "www/samples/he-1000x1000.png");
let site;

before(async () => {
  assert.ok(fs.existsSync(path.join(DIST, "index.html")), "build the viewer first (cargo xtask test does)");
  site = await serveDir(DIST);
});
after(async () => { site?.server.close(); });

const labels = (page) => page.evaluate(async () => Array.from(await window.histoseg.labels()));

// Three ways WebGPU can be unusable, each made real in the workers (where the device is made)
// before they start.
const NO_WEBGPU = [
  { why: "the browser has no WebGPU", script: () => { Object.defineProperty(WorkerNavigator.prototype, "gpu", { get: () => undefined }); }, notice: /^Running on the CPU: this browser has no WebGPU\.$/ },
  { why: "no adapter is offered", script: () => { GPUAdapter; GPU.prototype.requestAdapter = async () => null; }, notice: /^Running on the CPU: no WebGPU adapter is available\.$/ },
  { why: "the device request is refused", script: () => { GPUAdapter.prototype.requestDevice = async () => { throw new DOMException("refused by the test", "OperationError"); }; }, notice: /^WebGPU failed \(WebGPU could not be started: .+\); running on the CPU instead\.$/ },
];

for (const c of NO_WEBGPU) {
  test(`WebGPU unusable (${c.why}): the page runs on the CPU and says so`, { timeout: 300_000 }, async () => {
    const b = await launch({ webgpu: true, serviceWorkers: "block" });
    try {
      await addWorkerInitScript(b.context, c.script);
      const { page, problems } = await readyPage(b.context, site.url, "?model=glands");
      const notices = await page.evaluate(() => window.histoseg.notices);
      assert.ok(notices.some((n) => c.notice.test(n)), notices.join(" | "));
      assert.equal(await page.isVisible("#notice"), true, "the notice is on screen");
      await page.setInputFiles("#file", path.join(ROOT, "tests/bad_inputs/bigtiff.tif"));
      await page.waitForFunction(() => window.histoseg.status === "opened", null, { timeout: 60_000 });
      await page.click("#segment-all");
      const seg = await segmentationEnd(page);
      assert.equal(seg.status, "done", seg.errors.join("; "));
      assert.equal(seg.result.backend, "cpu");
      assert.deepEqual(problems, []);
    } finally {
      await b.close();
    }
  });
}

test("WebGPU device lost mid-run: the run finishes on the CPU with the tiles already done", { timeout: 900_000 }, async () => {
  const b = await launch({ webgpu: true, serviceWorkers: "block" });
  try {
    // keep a handle on every GPU device the workers create, so the test can destroy it
    await addWorkerInitScript(b.context, () => {
      self.__gpuDevices = [];
      if (!globalThis.GPUAdapter) return;
      const request = GPUAdapter.prototype.requestDevice;
      GPUAdapter.prototype.requestDevice = async function (...a) {
        const d = await request.apply(this, a);
        self.__gpuDevices.push(d);
        return d;
      };
    });
    const { page, problems } = await readyPage(b.context, site.url, "?model=glands");
    const devices = await inWorkers(page, () => self.__gpuDevices.length);
    assert.deepEqual(devices.sort(), [0, 1], "the model runs on a WebGPU device in the compute worker; the display worker has none");
    await page.setInputFiles("#file", HE);
    await page.waitForFunction(() => window.histoseg.status === "opened", null, { timeout: 60_000 });
    // 0.4 µm/px makes the 1000 px image 400 px at the glands model's 1 µm/px: four 256 px tiles
    await page.fill("#umpp", "0.4");
    await page.click("#segment-all");
    await page.waitForFunction(() => Number(document.getElementById("progress").value) >= 1, null, { timeout: 300_000 });
    const doneBefore = await page.evaluate(() => Number(document.getElementById("progress").value));
    await inWorkers(page, () => self.__gpuDevices.forEach((d) => d.destroy()));
    const lost = await segmentationEnd(page, 600_000);
    assert.equal(lost.status, "done", lost.errors.join("; "));
    assert.equal(lost.result.backend, "cpu");
    assert.ok(lost.result.gpuLostAtTile >= doneBefore && lost.result.gpuLostAtTile < lost.result.tiles,
      `lost after ${lost.result.gpuLostAtTile} of ${lost.result.tiles} tiles (${doneBefore} done when destroyed)`);
    const notices = await page.evaluate(() => window.histoseg.notices);
    assert.ok(notices.some((n) => n.startsWith("The GPU stopped working")), notices.join(" | "));
    assert.equal((await page.evaluate(() => window.histoseg.image)).name, "he-1000x1000.png", "the image stays open");
    const mixed = await labels(page);

    // the same region again, now wholly on the CPU: the same mask (WebGPU and the CPU agree)
    await page.click("#segment-all");
    const cpu = await segmentationEnd(page);
    assert.equal(cpu.status, "done", cpu.errors.join("; "));
    assert.equal(cpu.result.gpuLostAtTile, null);
    const again = await labels(page);
    assert.equal(again.length, mixed.length);
    const differ = mixed.filter((l, i) => l !== again[i]).length;
    console.log(`GPU lost after ${lost.result.gpuLostAtTile} of ${lost.result.tiles} tiles; finished on the CPU; ${differ} of ${mixed.length} pixels differ from a CPU-only run`);
    assert.ok(differ <= mixed.length * 0.005, `${differ} pixels differ`);
    assert.deepEqual(problems, []);
  } finally {
    await b.close();
  }
});

test("opening a second image during a run stops the run; the new image segments", { timeout: 900_000 }, async () => {
  // The run is in the compute worker, which reads its messages between tiles and while a tile's
  // readback is awaited: the new image arrives while the run's last tile may still be on the GPU.
  const b = await launch({ webgpu: true });
  try {
    const { page, problems } = await readyPage(b.context, site.url, "?model=glands");
    await page.setInputFiles("#file", HE);
    await page.waitForFunction(() => window.histoseg.status === "opened", null, { timeout: 60_000 });
    await page.fill("#umpp", "0.4"); // four 256 px tiles, as above
    await page.click("#segment-all");
    await page.waitForFunction(() => Number(document.getElementById("progress").value) >= 3, null, { timeout: 300_000 });
    await page.setInputFiles("#file", path.join(ROOT, "tests/bad_inputs/grey.png"));
    await page.waitForFunction(() => window.histoseg.image?.name === "grey.png", null, { timeout: 60_000 });
    // segment the new image at once, while the old run's last tile may still be on the GPU
    await page.click("#segment-all");
    const seg = await segmentationEnd(page, 600_000);
    assert.equal(seg.status, "done", seg.errors.join("; "));
    assert.deepEqual([seg.result.x, seg.result.y, seg.result.width, seg.result.height], [0, 0, 96, 96], "the mask is the new image's");
    const notices = await page.evaluate(() => window.histoseg.notices);
    const cancelled = await page.evaluate(() => window.histoseg.cancelled);
    assert.equal(cancelled.length, 1, notices.join(" | "));
    // the last tile may have come back from the GPU before the run saw the new image
    assert.match(cancelled[0], /^Cancelled after [34] of 4 tiles: a new image was opened\.$/);
    assert.deepEqual(await page.evaluate(() => window.histoseg.drawn), ["grey.png"], "only the new image's mask was ever drawn");
    assert.deepEqual(problems, []);
  } finally {
    await b.close();
  }
});
