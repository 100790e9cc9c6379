// Benchmark (not a test): the same network in the same headless Chromium, in one run:
//   histoseg on WebGPU, histoseg on the CPU (burn flex in wasm),
//   onnxruntime-web on WebGPU and on wasm, on the ONNX export of the same model file.
// Each engine gets a fresh browser; every engine runs the same real GlaS tiles (the reference
// tiles `histoseg export --format onnx --reference` writes), timed from input array to output
// array (upload, network, readback). Prints a Markdown table of ms/tile and tiles/s per tile and
// batch size, and the ratios the targets are stated in.
//
//   cargo xtask build && cargo build --release --features cli
//   node tests/browser/bench.mjs models/glands.histoseg [--tiles 128,256] [--batches 1,4,16]
//        [--iters 2] [--engines histoseg-webgpu,histoseg-cpu,ort-webgpu,ort-wasm]
//        [--skip ort-webgpu:256:16,...]
//
// On these machines WebGPU is SwiftShader (Vulkan on the CPU), so absolute WebGPU figures mean
// little; the ratio between engines on the same adapter is what counts. Neither engine gets
// threads: the page is not cross-origin isolated, so onnxruntime-web's wasm runs one thread, as
// burn flex does in wasm.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { execFileSync } from "node:child_process";
import { serveDir } from "./server.mjs";
import { launch, DATA } from "./browser.mjs";

const ROOT = path.resolve(import.meta.dirname, "../..");
const args = process.argv.slice(2);
const opt = (name, dflt) => { const i = args.indexOf(`--${name}`); return i >= 0 ? args[i + 1] : dflt; };
const modelPath = args[0];
if (!modelPath || modelPath.startsWith("--")) { console.error("usage: node tests/browser/bench.mjs MODEL [--tiles 128,256] [--batches 1,4,16] [--iters 2] [--engines ...]"); process.exit(2); }
const tiles = opt("tiles", "128,256").split(",").map(Number);
const batches = opt("batches", "1,4,16").split(",").map(Number);
const iters = Number(opt("iters", "2"));
const engines = opt("engines", "histoseg-webgpu,histoseg-cpu,ort-webgpu,ort-wasm").split(",");
// ENGINE:TILE:BATCH configurations to leave out (on SwiftShader a 256 px batch of 16 takes many minutes)
const skip = new Set(opt("skip", "").split(",").filter(Boolean));

// ONNX exports and real reference tiles, one set per tile size
const work = fs.mkdtempSync(path.join(os.tmpdir(), "histoseg-bench-"));
const image = path.join(DATA, "glas/images/testA_1.png");
for (const t of tiles) {
  execFileSync(path.join(ROOT, "target/release/histoseg"), ["export", "--format", "onnx", "--model", modelPath,
    "--out", path.join(work, `model-${t}.onnx`), "--tile", String(t), "--reference", image], { stdio: "ignore" });
}
fs.copyFileSync(modelPath, path.join(work, "model.histoseg"));
const site = await serveDir(path.join(ROOT, "dist"), {
  "/ort/": path.join(ROOT, "node_modules/onnxruntime-web/dist"),
  "/bench/": work,
});

async function runEngine(engine) {
  const webgpu = engine.endsWith("webgpu");
  const b = await launch({ webgpu });
  const page = await b.context.newPage();
  page.on("console", (m) => { if (m.type() === "error") console.error(`  [${engine}] ${m.text()}`); });
  await page.goto(site.url);
  await page.waitForFunction(() => window.histoseg?.status !== "starting", null, { timeout: 120000 });
  const rows = [];
  for (const tile of tiles) {
    for (const batch of batches) {
      if (skip.has(`${engine}:${tile}:${batch}`)) continue;
      const r = await page.evaluate(async ({ engine, tile, batch, iters }) => {
        const get = async (p) => new Uint8Array(await (await fetch(p)).arrayBuffer());
        const ref = new Float32Array((await get(`/bench/model-${tile}.reference-input.f32`)).buffer);
        const per = 3 * tile * tile;
        const input = new Float32Array(batch * per);
        for (let i = 0; i < batch; i++) input.set(ref.subarray((i % (ref.length / per)) * per, (i % (ref.length / per) + 1) * per), i * per);
        let run, label;
        if (engine.startsWith("histoseg")) {
          // the page itself runs the wasm in workers; the bare network is timed in the page
          const w = window.__w ??= await import("/histoseg.js").then(async (w) => { await w.default({ module_or_path: "/histoseg_bg.wasm" }); return w; });
          window.__m ??= {};
          const key = `${engine}-${tile}`;
          window.__m[key] ??= await w.Model.load(await get("/bench/model.histoseg"), engine.endsWith("webgpu") ? "webgpu" : "cpu", tile);
          const m = window.__m[key];
          label = `histoseg ${m.backend}`;
          run = async () => m.run(input, batch);
        } else {
          const ort = window.__ort ??= await import(engine === "ort-webgpu" ? "/ort/ort.webgpu.min.mjs" : "/ort/ort.wasm.min.mjs");
          ort.env.wasm.wasmPaths = "/ort/";
          ort.env.wasm.numThreads = 1;
          window.__s ??= {};
          const ep = engine === "ort-webgpu" ? "webgpu" : "wasm";
          window.__s[tile] ??= await ort.InferenceSession.create(`/bench/model-${tile}.onnx`, { executionProviders: [ep], graphOptimizationLevel: "all" });
          const s = window.__s[tile];
          label = `onnxruntime-web ${ort.env.versions?.web ?? ""} ${ep}`;
          run = async () => {
            const out = await s.run({ image: new ort.Tensor("float32", input, [batch, 3, tile, tile]) });
            return out.probabilities.data; // data is on the CPU: the readback is included
          };
        }
        const t0 = performance.now();
        const out = await run();
        const warmup = performance.now() - t0;
        const t1 = performance.now();
        for (let i = 0; i < iters; i++) await run();
        const ms = (performance.now() - t1) / (iters * batch);
        // every 101st probability, to compare the engines' answers on the same tiles
        return { label, warmup, ms, outputs: out.length, sample: Array.from(out.filter((_, i) => i % 101 === 0)) };
      }, { engine, tile, batch, iters });
      rows.push({ engine, tile, batch, ...r });
      console.error(`  ${r.label} tile ${tile} batch ${batch}: ${r.ms.toFixed(1)} ms/tile (first run ${r.warmup.toFixed(0)} ms)`);
    }
  }
  await b.close();
  return rows;
}

const all = [];
for (const e of engines) all.push(...await runEngine(e));
site.server.close();
fs.rmSync(work, { recursive: true, force: true });

const find = (engine, tile, batch) => all.find((r) => r.engine === engine && r.tile === tile && r.batch === batch);
console.log(`Headless Chromium (${os.cpus().length} cores), model ${path.basename(modelPath)}, real GlaS tiles, ` +
  `${iters} timed runs after one warm-up run per configuration\n`);
// the largest difference of an engine's probabilities from the first engine's on the same tiles
const maxDiff = (r) => {
  const base = all.find((o) => o.tile === r.tile && o.batch === r.batch);
  return Math.max(...r.sample.map((v, i) => Math.abs(v - base.sample[i])));
};
console.log(`| engine | tile | batch | ms/tile | tiles/s | first run ms | max |Δp| from ${all[0]?.label} |`);
console.log("|---|---|---|---|---|---|---|");
for (const r of all) console.log(`| ${r.label} | ${r.tile} | ${r.batch} | ${r.ms.toFixed(1)} | ${(1000 / r.ms).toFixed(2)} | ${r.warmup.toFixed(0)} | ${maxDiff(r).toExponential(1)} |`);
console.log("\nRatios (tiles/s of histoseg over onnxruntime-web; above 1 means histoseg is faster)\n");
console.log("| tile | batch | histoseg WebGPU / ort WebGPU (target >= 1.5) | histoseg CPU / ort wasm (target >= 1) |");
console.log("|---|---|---|---|");
for (const t of tiles) for (const bs of batches) {
  const ratio = (a, o) => (a && o ? (o.ms / a.ms).toFixed(2) : "n/a");
  console.log(`| ${t} | ${bs} | ${ratio(find("histoseg-webgpu", t, bs), find("ort-webgpu", t, bs))} | ${ratio(find("histoseg-cpu", t, bs), find("ort-wasm", t, bs))} |`);
}
