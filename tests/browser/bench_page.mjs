// Benchmark (not a test): what a user of the page waits for and what it weighs.
//
// 1. Page weight: every file the page loads from dist/ (the .wasm after wasm-opt, JS, CSS, each
//    model file), raw, gzip -9 and brotli q11, and the total of wasm + one model compressed.
// 2. Time to first mask from a cold load: a fresh browser profile opens the page, clicks the
//    nuclei sample (a 1000x1000 PNG) and "segment view"; time from navigation to the mask.
// 3. Whole image: the 2220x2967 Aperio SVS sample segmented end to end through the page (open,
//    decode, tiling, inference, blend, overlay), with the page's own stage timings and the peak
//    resident memory of the renderer (and, on WebGPU, the GPU process) from /proc.
//
//   cargo xtask build
//   node tests/browser/bench_page.mjs [--backends cpu,webgpu] [--whole cpu]
//   node tests/browser/bench_page.mjs --backends none --whole cpu:1,cpu:2   # CPU workers in the pool
//   node tests/browser/bench_page.mjs --backends none --whole none --glass 12000,24000,48000
//
// 4. `--glass SIDES`: slides of SIDE x SIDE pixels of glass with the SVS sample in them
//    (examples/make_big_slide.rs --glass), each segmented whole (CPU, the default pool): the same
//    tissue in ever larger slides, so time and memory show what the slide's size alone costs.
//
// The whole-image run takes minutes (hundreds of tiles on 2 cores); `--whole none` skips it.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { execFileSync } from "node:child_process";
import zlib from "node:zlib";
import { serveDir } from "./server.mjs";
import { launch, chromiumMemoryMb } from "./browser.mjs";

const ROOT = path.resolve(import.meta.dirname, "../..");
const DIST = path.join(ROOT, "dist");
const args = process.argv.slice(2);
const opt = (name, dflt) => { const i = args.indexOf(`--${name}`); return i >= 0 ? args[i + 1] : dflt; };
const backends = opt("backends", "cpu,webgpu").split(",").filter((b) => b && b !== "none");
const whole = opt("whole", "cpu").split(",").filter((b) => b !== "none");
const glassSides = opt("glass", "").split(",").filter(Boolean).map(Number);

// ---- 1. page weight
const mb = (n) => (n / 1e6).toFixed(2);
const sizes = (file) => {
  const raw = fs.readFileSync(file);
  return {
    raw: raw.length,
    gzip: zlib.gzipSync(raw, { level: 9 }).length,
    brotli: zlib.brotliCompressSync(raw, { params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 11, [zlib.constants.BROTLI_PARAM_SIZE_HINT]: raw.length } }).length,
  };
};
const files = fs.readdirSync(DIST).filter((f) => /\.(wasm|js|css|html)$/.test(f)).map((f) => path.join(DIST, f));
const models = fs.readdirSync(path.join(DIST, "models")).filter((f) => f.endsWith(".histoseg")).map((f) => path.join(DIST, "models", f));
console.log("## Page weight (dist/, after wasm-opt)\n");
console.log("| file | raw MB | gzip MB | brotli MB |");
console.log("|---|---|---|---|");
let wasm = null, jsCss = { raw: 0, gzip: 0, brotli: 0 };
const modelSizes = [];
for (const f of [...files, ...models]) {
  const s = sizes(f);
  console.log(`| ${path.relative(DIST, f)} | ${mb(s.raw)} | ${mb(s.gzip)} | ${mb(s.brotli)} |`);
  if (f.endsWith(".wasm")) wasm = s;
  else if (f.endsWith(".histoseg")) modelSizes.push(s);
  else for (const k of Object.keys(jsCss)) jsCss[k] += s[k];
}
console.log(`| JS + CSS + HTML together | ${mb(jsCss.raw)} | ${mb(jsCss.gzip)} | ${mb(jsCss.brotli)} |`);
const biggest = modelSizes.reduce((a, b) => (a.raw > b.raw ? a : b));
console.log(`| **wasm + largest model** | ${mb(wasm.raw + biggest.raw)} | ${mb(wasm.gzip + biggest.gzip)} | ${mb(wasm.brotli + biggest.brotli)} |`);

// ---- 2 and 3 in the browser
const site = await serveDir(DIST);

/** Peak resident memory (VmHWM, MB) of Chromium's renderer and GPU processes. */
const chromiumPeaks = () => ({ renderer: chromiumMemoryMb("renderer", "VmHWM"), gpu: chromiumMemoryMb("gpu-process", "VmHWM") });

async function openPage(backend, query = "") {
  const b = await launch({ webgpu: backend === "webgpu" });
  const page = await b.context.newPage();
  const t0 = Date.now();
  await page.goto(site.url + query);
  await page.waitForFunction(() => ["ready", "error"].includes(window.histoseg?.status), null, { timeout: 180000 });
  return { b, page, t0 };
}

console.log("\n## Time to first mask from a cold load (fresh profile, nuclei sample, visible region)\n");
console.log("| backend | page ready ms | sample opened ms | first mask ms | tiles | ms/tile |");
console.log("|---|---|---|---|---|---|");
for (const backend of backends) {
  const { b, page, t0 } = await openPage(backend);
  const ready = Date.now() - t0;
  await page.click("#sample-nuclei");
  await page.waitForFunction(() => window.histoseg.status === "opened", null, { timeout: 120000 });
  const opened = Date.now() - t0;
  await page.click("#segment-view");
  await page.waitForFunction(() => ["done", "error"].includes(window.histoseg.status), null, { timeout: 1800000 });
  const first = Date.now() - t0;
  const r = await page.evaluate(() => window.histoseg.lastResult);
  console.log(`| ${r.backend} | ${ready} | ${opened} | ${first} | ${r.tiles} | ${r.msPerTile.toFixed(0)} |`);
  await b.close();
}

if (whole.length) {
  console.log("\n## Whole image: the 2220x2967 SVS sample, end to end in the page\n");
  console.log("| backend | CPU workers | tiles | total s | tiles/s | open ms | inference s | ms/tile | blend + labels ms | overlay ms | renderer peak MB | GPU process peak MB |");
  console.log("|---|---|---|---|---|---|---|---|---|---|---|---|");
}
for (const entry of whole) {
  // "cpu:2": the CPU with a pool of two workers (the page's default is one per core)
  const [backend, workers] = entry.split(":");
  const { b, page } = await openPage(backend, workers ? `?cpu-workers=${workers}` : "");
  await page.click("#sample-glands");
  await page.waitForFunction(() => window.histoseg.status === "opened", null, { timeout: 120000 });
  const t0 = Date.now();
  await page.click("#segment-all");
  let peaks = { renderer: 0, gpu: 0 };
  const timer = setInterval(() => {
    const p = chromiumPeaks();
    peaks = { renderer: Math.max(peaks.renderer, p.renderer), gpu: Math.max(peaks.gpu, p.gpu) };
  }, 1000);
  await page.waitForFunction(() => ["done", "error"].includes(window.histoseg.status), null, { timeout: 3600000, polling: 1000 });
  clearInterval(timer);
  const total = (Date.now() - t0) / 1000;
  const p = chromiumPeaks();
  peaks = { renderer: Math.max(peaks.renderer, p.renderer), gpu: Math.max(peaks.gpu, p.gpu) };
  const r = await page.evaluate(() => ({ ...window.histoseg.lastResult, status: window.histoseg.status, errors: window.histoseg.errors }));
  if (r.status !== "done") console.log(`| ${backend} | failed: ${JSON.stringify(r.errors)} |`);
  else {
    const t = r.timings;
    console.log(`| ${r.backend} | ${r.workers} | ${r.tiles} | ${total.toFixed(0)} | ${(r.tiles / (t.inferMs / 1000)).toFixed(2)} | ${t.openMs.toFixed(0)} | ${(t.inferMs / 1000).toFixed(0)} | ${r.msPerTile.toFixed(0)} | ${t.blendMs.toFixed(0)} | ${t.overlayMs.toFixed(0)} | ${peaks.renderer.toFixed(0)} | ${backend === "webgpu" ? peaks.gpu.toFixed(0) : "-"} |`);
  }
  await b.close();
}

if (glassSides.length) {
  console.log("\n## Whole slides of glass with the same tissue: what the slide's size costs (CPU, default pool)\n");
  console.log("| slide | level-0 MP | tiles run | glass tiles skipped | total s | renderer peak MB | compute worker wasm MB | kept bytes |");
  console.log("|---|---|---|---|---|---|---|---|");
}
for (const side of glassSides) {
  const file = path.join(os.tmpdir(), `histoseg-bench-glass-${side}.svs`);
  execFileSync(path.join(ROOT, "target/release/examples/make_big_slide"), [file, "--glass", String(side)]);
  const { b, page } = await openPage("cpu");
  await page.setInputFiles("#file", file);
  await page.waitForFunction(() => window.histoseg.status === "opened", null, { timeout: 120000 });
  const t0 = Date.now();
  await page.click("#segment-all");
  let peak = 0;
  const timer = setInterval(() => { peak = Math.max(peak, chromiumPeaks().renderer); }, 1000);
  await page.waitForFunction(() => ["done", "error"].includes(window.histoseg.status), null, { timeout: 3600000, polling: 1000 });
  clearInterval(timer);
  const total = (Date.now() - t0) / 1000;
  peak = Math.max(peak, chromiumPeaks().renderer);
  const r = await page.evaluate(async () => ({
    ...window.histoseg.lastResult, status: window.histoseg.status, errors: window.histoseg.errors,
    memory: await window.histoseg.wasmMemory(), kept: await window.histoseg.kept(),
  }));
  if (r.status !== "done") console.log(`| ${side}x${side} | failed: ${JSON.stringify(r.errors)} |`);
  else {
    const kept = r.kept.find((k) => k.name === path.basename(file));
    console.log(`| ${side}x${side} | ${(side * side / 1e6).toFixed(0)} | ${r.tiles} | ${r.glassTiles} | ${total.toFixed(0)} | ${peak.toFixed(0)} | ${(r.memory.compute / 1e6).toFixed(0)} | ${kept?.rawBytes ?? "-"} |`);
  }
  await b.close();
  fs.rmSync(file, { force: true });
}
site.server.close();
