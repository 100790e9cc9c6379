// Benchmark (not a test): milliseconds per tile in headless Chromium, on WebGPU (SwiftShader
// here) and on the CPU fallback (burn flex in wasm), through the same wasm API as the page.
//
//   target/release/histoseg init --out runs/bench-256.histoseg --tile-size 256 --overlap 64
//   node tests/browser/bench.mjs runs/bench-256.histoseg [tiles=3]
//
// Needs a built viewer in dist/ (cargo xtask build). Prints one line per backend.
import fs from "node:fs";
import path from "node:path";
import { serveDir } from "./server.mjs";
import { launch, DATA } from "./browser.mjs";

const modelPath = process.argv[2];
const tiles = Number(process.argv[3] || 3);
if (!modelPath) { console.error("usage: node tests/browser/bench.mjs MODEL [tiles]"); process.exit(2); }
const site = await serveDir(path.resolve(import.meta.dirname, "../../dist"));
const model = fs.readFileSync(modelPath).toString("base64");
const glas = fs.readFileSync(path.join(DATA, "glas/images/testA_1.png")).toString("base64");

for (const webgpu of [true, false]) {
  const b = await launch({ webgpu });
  const page = await b.context.newPage();
  await page.goto(site.url);
  await page.waitForFunction(() => window.wasmBindings && window.histoseg?.status !== "starting", null, { timeout: 120000 });
  const r = await page.evaluate(async ({ model, glas, webgpu, tiles }) => {
    const w = window.wasmBindings;
    const bytes = Uint8Array.from(atob(model), (c) => c.charCodeAt(0));
    const m = await w.Model.load(bytes, webgpu ? "webgpu" : "cpu");
    const tile = m.manifest().tile_size;
    // one tile-sized crop of a real GlaS image per run
    const blob = new Blob([Uint8Array.from(atob(glas), (c) => c.charCodeAt(0))], { type: "image/png" });
    const bmp = await createImageBitmap(blob);
    const c = new OffscreenCanvas(tile, tile);
    c.getContext("2d").drawImage(bmp, 100, 100, tile, tile, 0, 0, tile, tile);
    const png = new Uint8Array(await (await c.convertToBlob({ type: "image/png" })).arrayBuffer());
    const slide = w.Slide.open(png);
    const times = [];
    for (let i = 0; i <= tiles; i++) {
      const job = m.segment(slide, 0, 0, tile, tile);
      const t0 = performance.now();
      while (!(await job.step(1))) {}
      times.push(performance.now() - t0);
      job.finish().free();
    }
    return { backend: m.backend, tile, warmup: times[0], times: times.slice(1) };
  }, { model, glas, webgpu, tiles });
  const mean = r.times.reduce((a, b) => a + b, 0) / r.times.length;
  console.log(`${r.backend.padEnd(6)} ${r.tile}x${r.tile} tile: ${mean.toFixed(0)} ms/tile (mean of ${r.times.length}, first run ${r.warmup.toFixed(0)} ms)`);
  await b.close();
}
site.server.close();
